# FocalNet-B (SRF) with overlapped patch embeddings: a 7x7 stride-4 stem and 3x3 stride-2
# downsampling convolutions. ImageNet-1K, 300 epochs; drop path 0.5 as the paper's B (no authors'
# config). Paper Table 3: 91.6M, 15.3 GFLOPs, 84.0 top-1.
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
        use_conv_embed=True,
        drop_path_rate=0.5),
    head=dict(in_channels=1024))
