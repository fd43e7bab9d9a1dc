# Focal-S Mask R-CNN 3x, multi-scale training.
_base_ = './mask_rcnn_focal_transformer_t_3x.py'

pretrained = 'checkpoints/focal-small-is224-ws7.pth'
model = dict(
    backbone=dict(depths=(2, 2, 18, 2), init_cfg=dict(checkpoint=pretrained)))
