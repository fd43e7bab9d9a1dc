# Focal-T Cascade Mask R-CNN 3x (4conv1fc GIoU box heads), multi-scale training.
_base_ = [
    '../_base_/models/cascade_mask_rcnn_4conv1fc_giou_fpn.py',
    '../_base_/datasets/coco_instance_ms_crop.py',
    '../_base_/schedules/det_adamw_3x.py',
    'mmdet::_base_/default_runtime.py'
]

custom_imports = dict(imports=['mmfocal'], allow_failed_imports=False)
# ImageNet-1K weights from the authors' release (see the README).
pretrained = 'checkpoints/focal-tiny-is224-ws7.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='FocalTransformer',
        embed_dims=96,
        depths=(2, 2, 6, 2),
        num_heads=(3, 6, 12, 24),
        window_size=7,
        expand_size=3,
        focal_levels=2,
        focal_windows=(15, 13, 9, 7),
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))
