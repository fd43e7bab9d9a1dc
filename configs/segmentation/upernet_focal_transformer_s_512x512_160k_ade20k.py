# Focal-S (ImageNet-1K) UperNet, ADE20K 512x512, 160k iterations.
_base_ = './upernet_focal_transformer_t_512x512_160k_ade20k.py'

# PaddleViT's port of the authors' Focal-S ImageNet-1K weights (plain patch embedding,
# 83.55 top-1), downloaded by hand: docs/en/checkpoints.md, "Focal Transformer ports".
pretrained = 'checkpoints/focal_small_patch4_window7_224.pdparams'
model = dict(
    backbone=dict(depths=(2, 2, 18, 2), init_cfg=dict(checkpoint=pretrained)))
