# FocalNet-T (SRF) with overlapped patch embeddings: a 7x7 stride-4 stem and 3x3 stride-2
# downsampling convolutions. ImageNet-1K, 300 epochs; drop path 0.2 as the paper's T (no authors'
# config). Paper Table 3: 30.4M, 4.4 GFLOPs, 82.4 top-1.
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
        focal_levels=2,
        focal_windows=3,
        use_conv_embed=True,
        drop_path_rate=0.2),
    head=dict(in_channels=768))
