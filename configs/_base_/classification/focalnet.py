# An ImageNet classifier on FocalNet as the authors' classification/focalnet.py builds it:
# the last stage through the final LayerNorm (``backbone.norm``, the authors' ``norm``),
# global average pooling and a Linear head (``head.fc``, the authors' ``head``; truncated
# normal std 0.02, bias 0, as their _init_weights). The backbone initialises itself as the
# authors do, so the classifier has no init_cfg of its own. Label smoothing 0.1 on the
# Mixup (alpha 0.8) / CutMix (alpha 1.0) targets, one of the two per batch.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='FocalNet',
        embed_dims=96,
        depths=(2, 2, 6, 2),
        focal_levels=2,
        focal_windows=3,
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
