# FocalNet-T (deeper) (SRF, 2 focal levels) Mask R-CNN 3x, multi-scale training.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    '../_base_/datasets/coco_instance_ms_crop.py',
    '../_base_/schedules/det_adamw_3x_fp16.py',
    'mmdet::_base_/default_runtime.py'
]

custom_imports = dict(imports=['mmfocal'], allow_failed_imports=False)
# The deeper FocalNets' ImageNet-1K weights were never published (docs/en/checkpoints.md,
# "Where the weights live"): put your own checkpoint there (the LRF variant loads the SRF
# weights and adds a level).
pretrained = 'checkpoints/focalnet_tiny_deeper_srf.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='FocalNet',
        embed_dims=64,
        depths=(3, 3, 16, 3),
        focal_levels=2,
        focal_windows=9,
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[64, 128, 256, 512]))
