# FocalNet-B pretrained on ImageNet-22K at 224, fine-tuned on ImageNet-1K at 384 for 30 epochs (lr
# 3e-5, drop path 0.3, no Mixup or CutMix; adamw_30e_in21k_finetune.py says where the rest comes
# from). Paper Table 5: 88.1M, 44.8 GFLOPs, 86.5 top-1. The architecture is FocalNet-B SRF (2
# focal levels), whose counts the table gives for both resolutions; its caption's three focal
# levels would be FocalNet-B LRF (88.75M). The authors released no ImageNet-22K FocalNet-B: set
# model.backbone.init_cfg to your own checkpoint, e.g. dict(type='Pretrained', checkpoint=PATH).
_base_ = [
    '../_base_/classification/focalnet.py',
    '../_base_/classification/imagenet_bs128_384.py',
    '../_base_/classification/adamw_30e_in21k_finetune.py',
    'mmpretrain::_base_/default_runtime.py'
]

default_scope = 'mmpretrain'
custom_imports = dict(imports=['mmfocal'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        embed_dims=128,
        depths=(2, 2, 18, 2),
        focal_levels=2,
        focal_windows=3,
        drop_path_rate=0.3),
    head=dict(in_channels=1024),
    train_cfg=None)
