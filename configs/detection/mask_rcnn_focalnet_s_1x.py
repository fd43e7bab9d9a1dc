# FocalNet-S (SRF, 2 focal levels) Mask R-CNN 1x, multi-scale training.
_base_ = './mask_rcnn_focalnet_t_1x.py'

pretrained = 'https://github.com/microsoft/FocalNet/releases/download/v1.0.0/focalnet_small_srf.pth'  # noqa
model = dict(
    backbone=dict(
        depths=(2, 2, 18, 2), drop_path_rate=0.2,
        init_cfg=dict(checkpoint=pretrained)))
