# FocalNet-L fl4 (ImageNet-22K 384) Mask2Former, COCO panoptic: mmdet's Swin-L panoptic
# config (200 queries, large-scale jitter, 737.5k iterations of batch 16) with the
# backbone swapped.
_base_ = 'mmdet::mask2former/mask2former_swin-l-p4-w12-384-in21k_16xb1-lsj-100e_coco-panoptic.py'  # noqa

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
    panoptic_head=dict(in_channels=[192, 384, 768, 1536]))
