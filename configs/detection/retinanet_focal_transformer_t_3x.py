# Focal-T RetinaNet 3x, multi-scale training; the FPN uses stages 1..3 only.
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    '../_base_/datasets/coco_detection_ms_crop.py',
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
        out_indices=(1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[192, 384, 768], start_level=0, num_outs=5))
