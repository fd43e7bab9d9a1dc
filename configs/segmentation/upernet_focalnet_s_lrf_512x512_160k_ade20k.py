# FocalNet-S (LRF) UperNet, ADE20K 512x512, 160k iterations.
_base_ = './upernet_focalnet_s_512x512_160k_ade20k.py'

pretrained = 'https://github.com/microsoft/FocalNet/releases/download/v1.0.0/focalnet_small_lrf.pth'  # noqa
model = dict(backbone=dict(focal_levels=3, init_cfg=dict(checkpoint=pretrained)))
