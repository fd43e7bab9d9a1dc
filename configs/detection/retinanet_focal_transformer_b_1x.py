# Focal-B RetinaNet 1x, single-scale training (1333x800); the FPN uses stages 1..3 only.
_base_ = './retinanet_focal_transformer_t_1x.py'

pretrained = 'checkpoints/focal-base-is224-ws7.pth'
model = dict(
    backbone=dict(
        embed_dims=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32), drop_path_rate=0.3,
        init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[256, 512, 1024]))
