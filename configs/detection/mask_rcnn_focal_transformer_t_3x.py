# Focal-T Mask R-CNN 3x, multi-scale training.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    '../_base_/datasets/coco_instance_ms_crop.py',
    '../_base_/schedules/det_adamw_3x.py',
    'mmdet::_base_/default_runtime.py',
    '../_base_/models/focal_transformer_t.py'
]

custom_imports = dict(imports=['mmfocal'], allow_failed_imports=False)
# PaddleViT's port of the authors' Focal-T ImageNet-1K weights (plain patch embedding,
# 82.03 top-1), downloaded by hand: docs/en/checkpoints.md, "Focal Transformer ports".
pretrained = 'checkpoints/focal_tiny_patch4_window7_224.pdparams'
model = dict(
    backbone=dict(
        _base_.focal_transformer_t,
        _delete_=True,
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))
