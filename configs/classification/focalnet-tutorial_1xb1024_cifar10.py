# The FocalNet of the Keras tutorial "Focal Modulation: A replacement for Self-Attention"
# (keras-io examples/vision/focal_modulation_network.py, 2023-02-15) on CIFAR-10, in
# mmpretrain. Its goal: the tutorial's 68.8 % top-1 on the validation images after 25 epochs
# (classification_tables.json "tutorial"; best epoch 68.94 %, train 79.97 %).
#
# Data: mmpretrain's CIFAR10 reads the python batches under data/cifar10/cifar-10-batches-py/
# (data_batch_1..5, test_batch, batches.meta; checked against their MD5 sums, downloaded there
# when missing). As the tutorial: the first 40000 training images train, the last 10000
# validate, the 10000 test images test; 32x32 images resized to 52 and randomly cropped to 48
# with horizontal flips for training, resized to 48 for testing; pixels / 255, no mean/std.
#
# Model: 3 stages (depths 2-3-2, 256-512-1024 channels on 12x12, 6x6 and 3x3 tokens), patch 4,
# 2 focal levels of window 3 (kernels 3 and 5), MLP ratio 4, dropout 0.1 after the stem, the
# modulation's projection and the MLP layers, no stochastic depth (the tutorial accepts a
# drop_path that it never applies). Final LayerNorm, average pooling, a Linear layer.
# Where mmfocal's block differs from the Keras one: mmfocal's is the authors' pre-norm block,
# x + mod(norm1(x)), where Keras has no norm before the modulation, x + mod(x); Keras's patch
# embeddings and final norm are LayerNorms of eps 1e-7 (mmfocal: 1e-5); the linear layers start
# from truncated normals of std 0.02 (Keras: Glorot uniform). The rest computes the same.
#
# Training: batch 1024, 25 epochs (40 iterations each), AdamW lr 1e-4, weight decay 1e-4 on
# every parameter, eps 1e-7 (Keras's), cross-entropy; the lr rises linearly over the first 15 %
# of the iterations from 0 (mmengine's LinearLR needs a factor > 0: 1e-3 of the lr) and then
# follows a cosine to 0.
_base_ = 'mmpretrain::_base_/default_runtime.py'

default_scope = 'mmpretrain'
custom_imports = dict(imports=['mmfocal'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='FocalNet',
        patch_size=4,
        embed_dims=256,
        depths=(2, 3, 2),
        mlp_ratio=4.,
        focal_levels=2,
        focal_windows=3,
        drop_rate=0.1,
        drop_path_rate=0.,
        final_norm=True),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=1024,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, )))

# CIFAR10 yields RGB arrays: no channel swap, pixels / 255.
data_preprocessor = dict(num_classes=10, mean=[0., 0., 0.], std=[255., 255., 255.],
                         to_rgb=False)

dataset_type = 'CIFAR10'
data_root = 'data/cifar10'
train_pipeline = [
    dict(type='Resize', scale=(52, 52), interpolation='bilinear'),
    dict(type='RandomCrop', crop_size=48),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='Resize', scale=(48, 48), interpolation='bilinear'),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=1024,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type, data_root=data_root, split='train', indices=40000,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1024,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type, data_root=data_root, split='train', indices=-10000,
        pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = dict(
    batch_size=1024,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='test', pipeline=test_pipeline))
test_evaluator = val_evaluator

max_epochs = 25
warmup_epochs = 0.15 * max_epochs  # 3.75 epochs = 150 of the 1000 iterations
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4, eps=1e-7, betas=(0.9, 0.999)))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=0., by_epoch=True, begin=warmup_epochs,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
# the lr above is for batch 1024 (tools/train.py --auto-scale-lr scales it to yours)
auto_scale_lr = dict(base_batch_size=1024)

default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=5, max_keep_ckpts=2, save_best='accuracy/top1', rule='greater'))
randomness = dict(seed=42)
# The tutorial's TrainMonitor: every 10 epochs (and after the last), the first 5 validation
# images, each beside the gates of its 2 focal levels, the global gate and the L2 norm of the
# modulator of the middle stage's last block (inferno at alpha 0.6), in the visualizer's
# backends (work_dirs/.../vis_data/vis_image).
custom_hooks = [
    dict(type='FocalMapsHook', interval=10, by_epoch=True, image_index=[0, 1, 2, 3, 4],
         stages=[1], style='tutorial', display_size=144)
]
