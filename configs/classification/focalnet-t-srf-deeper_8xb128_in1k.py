# Deeper and thinner FocalNet-T (SRF): 64 channels, depths 3-3-16-3, with the overlapped patch
# embeddings of Table 3 (7x7 stem, 3x3 downsampling): Table 4's parameter counts are those of this
# model (without them it has 0.87M fewer). ImageNet-1K, 300 epochs; drop path 0.2 as the paper's T
# (no authors' config). Paper Table 4: 25.1M, 4.0 GFLOPs, 82.7 top-1.
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
        embed_dims=64,
        depths=(3, 3, 16, 3),
        focal_levels=2,
        focal_windows=3,
        use_conv_embed=True,
        drop_path_rate=0.2),
    head=dict(in_channels=512))
