# FocalNet-T (LRF, 3 focal levels) ATSS 3x; the FPN uses stages 1..3 only.
_base_ = './atss_focalnet_t_3x.py'

pretrained = 'https://github.com/microsoft/FocalNet/releases/download/v1.0.0/focalnet_tiny_lrf.pth'  # noqa
model = dict(backbone=dict(focal_levels=3, init_cfg=dict(checkpoint=pretrained)))
