# Focal-B Mask R-CNN 3x, multi-scale training.
_base_ = './mask_rcnn_focal_transformer_t_3x.py'

# PaddleViT's port of the authors' Focal-B ImageNet-1K weights (plain patch embedding,
# 83.98 top-1), downloaded by hand: docs/en/checkpoints.md, "Focal Transformer ports".
pretrained = 'checkpoints/focal_base_patch4_window7_224.pdparams'
model = dict(
    backbone=dict(
        embed_dims=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32), drop_path_rate=0.3,
        init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[128, 256, 512, 1024]))
