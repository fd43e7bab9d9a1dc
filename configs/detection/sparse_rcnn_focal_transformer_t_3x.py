# Focal-T Sparse R-CNN 3x: 300 proposals, multi-scale + crop training,
# AdamW lr 2.5e-5, weight decay 1e-4, gradient clipping 1.0 (mmdet's recipe).
_base_ = [
    'mmdet::sparse_rcnn/sparse-rcnn_r50_fpn_300-proposals_crop-ms-480-800-3x_coco.py',
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
