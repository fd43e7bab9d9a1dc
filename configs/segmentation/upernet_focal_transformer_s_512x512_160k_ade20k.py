# Focal-S (ImageNet-1K) UperNet, ADE20K 512x512, 160k iterations.
_base_ = './upernet_focal_transformer_t_512x512_160k_ade20k.py'

pretrained = 'checkpoints/focal-small-is224-ws7.pth'
model = dict(
    backbone=dict(depths=(2, 2, 18, 2), init_cfg=dict(checkpoint=pretrained)))
