# Deeper and thinner FocalNet-B (SRF): 96 channels, depths 4-4-28-4, with the overlapped patch
# embeddings of Table 3 (7x7 stem, 3x3 downsampling): Table 4's parameter counts are those of this
# model (without them it has 1.94M fewer). ImageNet-1K, 300 epochs; drop path 0.5 as the paper's B
# (no authors' config). Paper Table 4: 85.1M, 14.3 GFLOPs, 84.1 top-1.
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
        depths=(4, 4, 28, 4),
        focal_levels=2,
        focal_windows=3,
        use_conv_embed=True,
        drop_path_rate=0.5),
    head=dict(in_channels=768))
