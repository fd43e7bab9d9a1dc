# FocalNet-B (LRF) UperNet, ADE20K 512x512, 160k iterations.
_base_ = './upernet_focalnet_b_512x512_160k_ade20k.py'

pretrained = 'https://github.com/microsoft/FocalNet/releases/download/v1.0.0/focalnet_base_lrf.pth'  # noqa
model = dict(backbone=dict(focal_levels=3, init_cfg=dict(checkpoint=pretrained)))
