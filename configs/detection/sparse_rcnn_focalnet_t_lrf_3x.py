# FocalNet-T (LRF, 3 focal levels) Sparse R-CNN 3x: 300 proposals, multi-scale + crop training,
# AdamW lr 2.5e-5, weight decay 1e-4, gradient clipping 1.0 (mmdet's recipe).
_base_ = 'mmdet::sparse_rcnn/sparse-rcnn_r50_fpn_300-proposals_crop-ms-480-800-3x_coco.py'

custom_imports = dict(imports=['mmfocal'], allow_failed_imports=False)
pretrained = 'https://github.com/microsoft/FocalNet/releases/download/v1.0.0/focalnet_tiny_lrf.pth'  # noqa
model = dict(
    backbone=dict(
        _delete_=True,
        type='FocalNet',
        embed_dims=96,
        depths=(2, 2, 6, 2),
        focal_levels=3,
        focal_windows=(11, 9, 9, 7),
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))
