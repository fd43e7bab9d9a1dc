# FocalNet-B (deeper) (SRF, 2 focal levels) Mask R-CNN 3x, multi-scale training.
_base_ = './mask_rcnn_focalnet_t_deeper_3x.py'

pretrained = 'checkpoints/focalnet_base_deeper_srf.pth'
model = dict(
    backbone=dict(
        embed_dims=96, depths=(4, 4, 28, 4), drop_path_rate=0.5,
        init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))
