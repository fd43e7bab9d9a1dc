# Focal-B Mask R-CNN 3x, multi-scale training.
_base_ = './mask_rcnn_focal_transformer_t_3x.py'

pretrained = 'checkpoints/focal-base-is224-ws7.pth'
model = dict(
    backbone=dict(
        embed_dims=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32), drop_path_rate=0.3,
        init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[128, 256, 512, 1024]))
