# Focal-S Mask R-CNN 1x, single-scale training (1333x800).
_base_ = './mask_rcnn_focal_transformer_t_1x.py'

pretrained = 'checkpoints/focal-small-is224-ws7.pth'
model = dict(
    backbone=dict(depths=(2, 2, 18, 2), init_cfg=dict(checkpoint=pretrained)))
