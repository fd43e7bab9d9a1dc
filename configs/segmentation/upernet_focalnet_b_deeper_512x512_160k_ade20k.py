# FocalNet-B (deeper) (SRF) UperNet, ADE20K 512x512, 160k iterations.
_base_ = './upernet_focalnet_t_deeper_512x512_160k_ade20k.py'

pretrained = 'checkpoints/focalnet_base_deeper_srf.pth'
model = dict(
    backbone=dict(
        embed_dims=96, depths=(4, 4, 28, 4), init_cfg=dict(checkpoint=pretrained)),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
