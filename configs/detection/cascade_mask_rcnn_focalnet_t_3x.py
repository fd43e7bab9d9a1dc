# FocalNet-T (SRF, 2 focal levels) Cascade Mask R-CNN 3x (4conv1fc GIoU box heads).
_base_ = [
    '../_base_/models/cascade_mask_rcnn_4conv1fc_giou_fpn.py',
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
        focal_windows=(11, 9, 9, 7),
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))
