# Isotropic FocalNet-S/16: one stage of 12 blocks, 384 channels, 16x16 patches, 3 focal levels
# (kernels 3, 5, 7). ImageNet-1K, 300 epochs. The authors' configs/focalnet_small_iso.yaml. Paper
# Table 6: 22.4M, 4.3 GFLOPs, 80.9 top-1.
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
        patch_size=16,
        embed_dims=384,
        depths=(12, ),
        focal_levels=3,
        focal_windows=3,
        drop_path_rate=0.2),
    head=dict(in_channels=384))
