# FocalNet-S (LRF, 3 focal levels) Mask R-CNN 1x.
_base_ = './mask_rcnn_focalnet_s_1x.py'

pretrained = 'https://github.com/microsoft/FocalNet/releases/download/v1.0.0/focalnet_small_lrf.pth'  # noqa
model = dict(backbone=dict(focal_levels=3, init_cfg=dict(checkpoint=pretrained)))
