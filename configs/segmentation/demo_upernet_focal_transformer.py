# Demo: the Focal-T UperNet config shrunk to train from scratch on a CPU in minutes, on
# the synthetic shapes of tools/dataset_converters/make_demo_data.py (ADE20K layout,
# 160x160 images, background + 4 shape classes). Only what must shrink differs from
# upernet_focal_transformer_t_512x512_160k_ade20k.py: the data, the image and crop scale,
# the widths and depths, the head channels and the schedule.
_base_ = './upernet_focal_transformer_t_512x512_160k_ade20k.py'

data_root = 'data/demo/ade/ADEChallengeData2016'
metainfo = dict(
    classes=('background', 'circle', 'square', 'triangle', 'star'),
    palette=[(120, 120, 120), (220, 40, 40), (40, 80, 220), (40, 180, 60), (240, 170, 20)])
num_classes = 5
embed_dims = 32
crop_size = (128, 128)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        embed_dims=embed_dims, depths=(1, 1, 2, 1), num_heads=(1, 2, 4, 8),
        drop_path_rate=0., init_cfg=None),
    decode_head=dict(
        in_channels=[embed_dims * 2**i for i in range(4)], channels=64,
        num_classes=num_classes),
    auxiliary_head=dict(in_channels=embed_dims * 4, channels=32, num_classes=num_classes))

# The ADE20K pipelines at a quarter of their scale (512 -> 128 crops, 2048x512 -> 640x160).
scale = (640, 160)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=scale, ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
# ADE20KDataset only takes subsets of ADE20K's 150 class names: the same layout and
# conventions (.jpg images, .png label maps, 0 ignored) with the demo's own classes.
dataset = dict(
    type='BaseSegDataset', data_root=data_root, metainfo=metainfo, img_suffix='.jpg',
    seg_map_suffix='.png', reduce_zero_label=True)
train_dataloader = dict(
    batch_size=8, num_workers=1, dataset=dict(**dataset, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=1, dataset=dict(**dataset, pipeline=test_pipeline))
test_dataloader = val_dataloader

# From scratch: a 10x higher lr than the pretrained recipe, a short warm-up, poly decay.
max_iters = 1500
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=50, end=max_iters, by_epoch=False)
]
optim_wrapper = dict(optimizer=dict(lr=1e-3))
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
randomness = dict(seed=0)
# The backbone's pictures (Focal Transformer: position-bias tables; FocalNet: gates and
# modulator over the first validation image) every 300 iterations, in the visualizer's
# backends (work_dirs/.../vis_data/vis_image).
custom_hooks = [dict(type='FocalMapsHook', interval=300)]
