# FocalNet-B (SRF: 2 focal levels, kernels 3 and 5), ImageNet-1K, 300 epochs. Paper Table 2:
# 88.1M, 15.3 GFLOPs, 83.7 top-1. The authors' configs/focalnet_base_srf.yaml.
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
        embed_dims=128,
        depths=(2, 2, 18, 2),
        focal_levels=2,
        focal_windows=3,
        drop_path_rate=0.5),
    head=dict(in_channels=1024))
