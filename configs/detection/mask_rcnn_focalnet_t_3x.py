# FocalNet-T (SRF, 2 focal levels) Mask R-CNN 3x, multi-scale training.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    '../_base_/datasets/coco_instance_ms_crop.py',
    '../_base_/schedules/det_adamw_3x_fp16.py',
    'mmdet::_base_/default_runtime.py'
]

custom_imports = dict(imports=['mmfocal'], allow_failed_imports=False)
pretrained = 'https://github.com/microsoft/FocalNet/releases/download/v1.0.0/focalnet_tiny_srf.pth'  # noqa
model = dict(
    backbone=dict(
        _delete_=True,
        type='FocalNet',
        embed_dims=96,
        depths=(2, 2, 6, 2),
        focal_levels=2,
        focal_windows=9,
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))
