# FocalNet-L (the authors' large_fl3: 3 focal levels, kernels 5, 7, 9, overlapped patch
# embeddings, post-norm blocks, layer scale) pretrained on ImageNet-22K, fine-tuned on ImageNet-1K
# at 224 for 30 epochs (lr 3e-5, drop path 0.3, no Mixup or CutMix; adamw_30e_in21k_finetune.py
# says where the rest comes from). Paper Table 5: 197.1M, 34.2 GFLOPs, 86.5 top-1. The backbone
# starts from the authors' ImageNet-22K weights (21842 classes; their head is left out).
_base_ = [
    '../_base_/classification/focalnet.py',
    '../_base_/classification/imagenet_bs128_224.py',
    '../_base_/classification/adamw_30e_in21k_finetune.py',
    'mmpretrain::_base_/default_runtime.py'
]

default_scope = 'mmpretrain'
custom_imports = dict(imports=['mmfocal'], allow_failed_imports=False)
pretrained = 'https://github.com/microsoft/FocalNet/releases/download/v1.0.0/focalnet_large_lrf_384.pth'  # noqa
model = dict(
    backbone=dict(
        embed_dims=192,
        depths=(2, 2, 18, 2),
        focal_levels=3,
        focal_windows=5,
        use_conv_embed=True,
        use_postln=True,
        use_layerscale=True,
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    head=dict(in_channels=1536),
    train_cfg=None)
