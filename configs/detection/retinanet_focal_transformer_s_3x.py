# Focal-S RetinaNet 3x, multi-scale training; the FPN uses stages 1..3 only.
_base_ = './retinanet_focal_transformer_t_3x.py'

pretrained = 'checkpoints/focal-small-is224-ws7.pth'
model = dict(
    backbone=dict(depths=(2, 2, 18, 2), init_cfg=dict(checkpoint=pretrained)))
