# An ImageNet classifier on Focal Transformer as the authors' focal_transformer.py builds it
# (configs/focal_*_patch4_window7_224.yaml): windows of 7, surrounding tokens within 3 of
# the window (expand size 3), one pooled level ('fc' pooling of 7x7 sub-windows) seen over
# 7, 5, 3, 1 pooled windows in stages 0..3; the surrounding tokens wrap around the map's
# border as in the released models. Stage 3's 7x7 map is a single window at 224, so the
# authors build it without surrounding tokens (focal_transformer.py L517-521) and their
# checkpoints have no table for them: expand size 0 there (with 3 its table would get no
# gradient, which DistributedDataParallel refuses). Then the final LayerNorm
# (``backbone.norm``), global average pooling and a Linear head (``head.fc``; truncated
# normal std 0.02, bias 0). The backbone initialises itself as the authors do (its 'fc'
# pooling included), so the classifier has no init_cfg of its own. Label smoothing 0.1 on
# the Mixup / CutMix targets.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='FocalTransformer',
        embed_dims=96,
        depths=(2, 2, 6, 2),
        num_heads=(3, 6, 12, 24),
        window_size=7,
        expand_size=(3, 3, 3, 0),
        focal_levels=2,
        focal_windows=(7, 5, 3, 1),
        pool_method='fc',
        wrap_neighbors=True,
        drop_path_rate=0.2,
        final_norm=True),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=768,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=.02, bias=0.)),
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8),
                             dict(type='CutMix', alpha=1.0)]))
