# FocalNet-T (LRF, 3 focal levels) Sparse R-CNN 3x: 300 proposals, multi-scale + crop training,
# AdamW lr 2.5e-5, weight decay 1e-4, gradient clipping 1.0 (mmdet's recipe).
_base_ = './sparse_rcnn_focalnet_t_3x.py'

pretrained = 'https://github.com/microsoft/FocalNet/releases/download/v1.0.0/focalnet_tiny_lrf.pth'  # noqa
model = dict(backbone=dict(focal_levels=3, init_cfg=dict(checkpoint=pretrained)))
