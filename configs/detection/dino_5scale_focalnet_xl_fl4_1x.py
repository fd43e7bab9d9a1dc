# FocalNet-XL (ImageNet-22K 384, 4 focal levels, windows 3) DINO, 5 scales, 12 epochs.
# The authors' XL fl4 classification config does not normalize the modulator.
_base_ = './dino_5scale_focalnet_l_fl4_1x.py'

pretrained = 'https://github.com/microsoft/FocalNet/releases/download/v1.0.0/focalnet_xlarge_lrf_384_fl4.pth'  # noqa
model = dict(
    backbone=dict(
        embed_dims=256,
        normalize_modulator=False,
        init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[256, 512, 1024, 2048]))
