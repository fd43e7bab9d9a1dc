# FocalNet-S (deeper) (SRF, 2 focal levels) Mask R-CNN 3x, multi-scale training.
_base_ = './mask_rcnn_focalnet_t_deeper_3x.py'

pretrained = 'checkpoints/focalnet_small_deeper_srf.pth'
model = dict(
    backbone=dict(
        depths=(4, 4, 28, 4), drop_path_rate=0.5,
        init_cfg=dict(checkpoint=pretrained)))
