# FocalNet-B (SRF) UperNet, ADE20K 512x512, 160k iterations.
_base_ = './upernet_focalnet_t_512x512_160k_ade20k.py'

pretrained = 'https://github.com/microsoft/FocalNet/releases/download/v1.0.0/focalnet_base_srf.pth'  # noqa
model = dict(
    backbone=dict(
        embed_dims=128, depths=(2, 2, 18, 2), init_cfg=dict(checkpoint=pretrained)),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
