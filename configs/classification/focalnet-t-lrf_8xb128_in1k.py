# FocalNet-T (LRF: 3 focal levels, kernels 3, 5 and 7), ImageNet-1K, 300 epochs. Paper Table 2:
# 28.6M, 4.5 GFLOPs, 82.3 top-1. The authors' configs/focalnet_tiny_lrf.yaml.
_base_ = [
    '../_base_/classification/focalnet.py',
    '../_base_/classification/imagenet_bs128_224.py',
    '../_base_/classification/adamw_300e.py',
    'mmpretrain::_base_/default_runtime.py'
]

default_scope = 'mmpretrain'
custom_imports = dict(imports=['mmfocal'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        embed_dims=96,
        depths=(2, 2, 6, 2),
        focal_levels=3,
        focal_windows=3,
        drop_path_rate=0.2),
    head=dict(in_channels=768))
