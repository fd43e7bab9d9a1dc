# FocalNet-L fl4 (ImageNet-22K 384) Mask2Former, ADE20K 640x640, 160k iterations: mmseg's
# Swin-L config (100 queries) with the backbone swapped.
_base_ = 'mmseg::mask2former/mask2former_swin-l-in22k-384x384-pre_8xb2-160k_ade20k-640x640.py'  # noqa

custom_imports = dict(imports=['mmfocal'], allow_failed_imports=False)
pretrained = 'https://github.com/microsoft/FocalNet/releases/download/v1.0.0/focalnet_large_lrf_384_fl4.pth'  # noqa
model = dict(
    backbone=dict(
        _delete_=True,
        type='FocalNet',
        embed_dims=192,
        depths=(2, 2, 18, 2),
        focal_levels=4,
        focal_windows=3,
        use_conv_embed=True,
        use_postln=True,
        use_layerscale=True,
        normalize_modulator=True,
        drop_path_rate=0.3,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[192, 384, 768, 1536]))
