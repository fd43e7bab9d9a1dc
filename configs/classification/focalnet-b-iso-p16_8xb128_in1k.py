# Isotropic FocalNet-B/16: one stage of 12 blocks, 768 channels, 16x16 patches, 3 focal levels
# (kernels 3, 5, 7). ImageNet-1K, 300 epochs. The authors' configs/focalnet_base_iso.yaml. Paper
# Table 6: 87.2M, 16.9 GFLOPs, 82.4 top-1. The authors' focalnet_base_iso builder adds layer scale
# and post-norm blocks (microsoft/FocalNet classification/focalnet.py L649 at e8514bd).
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
        embed_dims=768,
        depths=(12, ),
        focal_levels=3,
        focal_windows=3,
        use_layerscale=True,
        use_postln=True,
        drop_path_rate=0.2),
    head=dict(in_channels=768))
