# Focal-L (ImageNet-22K) HTC++ 3x: HTC with its semantic branch (COCO-stuff maps under
# data/coco/stuffthingmaps/), multi-scale training (short side 400..1400, long side at most
# 1600), soft-NMS at test time. InstaBoost, also part of HTC++, is left out: mmdet's
# InstaBoost transform needs the separate `instaboostfast` package.
_base_ = [
    'mmdet::htc/htc_r50_fpn_1x_coco.py',
    '../_base_/models/focal_transformer_l.py'
]

custom_imports = dict(imports=['mmfocal'], allow_failed_imports=False)
# Focal-L ImageNet-22K weights were not released: put your own checkpoint there.
pretrained = 'checkpoints/focal-large-in22k.pth'
model = dict(
    backbone=dict(
        _base_.focal_transformer_l,
        _delete_=True,
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[192, 384, 768, 1536]),
    test_cfg=dict(rcnn=dict(nms=dict(type='soft_nms', iou_threshold=0.5))))

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True, with_seg=True),
    dict(type='RandomResize', scale=[(1600, 400), (1600, 1400)], keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
# batch 16 = 8 GPUs x 2 images
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))

max_epochs = 36
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[27, 33],
        gamma=0.1)
]
optim_wrapper = dict(
    optimizer=dict(
        _delete_=True, type='AdamW', lr=0.0001, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(
        custom_keys={
            'norm': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
        }))
