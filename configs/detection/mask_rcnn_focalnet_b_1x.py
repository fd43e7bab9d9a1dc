# FocalNet-B (SRF, 2 focal levels) Mask R-CNN 1x, multi-scale training.
_base_ = './mask_rcnn_focalnet_t_1x.py'

pretrained = 'https://github.com/microsoft/FocalNet/releases/download/v1.0.0/focalnet_base_srf.pth'  # noqa
model = dict(
    backbone=dict(
        embed_dims=128, depths=(2, 2, 18, 2), drop_path_rate=0.3,
        init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[128, 256, 512, 1024]))
