# FocalNet-T (SRF, 2 focal levels) ATSS 3x; the FPN uses stages 1..3 only.
_base_ = [
    '../_base_/models/atss_fpn.py',
    '../_base_/datasets/coco_detection_ms_crop.py',
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
        out_indices=(1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[192, 384, 768], start_level=0, num_outs=5))
