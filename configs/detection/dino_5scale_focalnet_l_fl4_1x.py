# FocalNet-L (ImageNet-22K 384, 4 focal levels, windows 3, normalized modulator) DINO,
# 5 scales (stages 0-3 and a stride-64 level), 12 epochs: mmdet's Swin-L DINO with the
# backbone of FocalNet-DINO's released model. The neck keeps its conv biases like the DINO
# codebase's input projections: the released FocalNet-L + DINO weights load into this
# config after tools/model_converters/convert_focalnet_dino.py.
_base_ = 'mmdet::dino/dino-5scale_swin-l_8xb2-12e_coco.py'

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
        with_cp=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[192, 384, 768, 1536], bias=True))
