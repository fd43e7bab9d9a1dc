# FocalNet-T (LRF, 3 focal levels) Cascade Mask R-CNN 3x (4conv1fc GIoU box heads).
_base_ = './cascade_mask_rcnn_focalnet_t_3x.py'

pretrained = 'https://github.com/microsoft/FocalNet/releases/download/v1.0.0/focalnet_tiny_lrf.pth'  # noqa
model = dict(backbone=dict(focal_levels=3, init_cfg=dict(checkpoint=pretrained)))
