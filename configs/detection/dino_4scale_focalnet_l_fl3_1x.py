# FocalNet-L (ImageNet-22K 384, 3 focal levels, windows 5) DINO, 4 scales (stages 1-3 and
# a stride-64 level), 12 epochs: mmdet's Swin-L DINO with the backbone of FocalNet-DINO's
# 4-scale fl3 config. The neck keeps its conv biases like the DINO codebase's input
# projections, so that its FocalNet checkpoints convert (tools/model_converters).
_base_ = 'mmdet::dino/dino-5scale_swin-l_8xb2-12e_coco.py'

custom_imports = dict(imports=['mmfocal'], allow_failed_imports=False)
pretrained = 'https://github.com/microsoft/FocalNet/releases/download/v1.0.0/focalnet_large_lrf_384.pth'  # noqa
num_levels = 4
model = dict(
    num_feature_levels=num_levels,
    backbone=dict(
        _delete_=True,
        type='FocalNet',
        embed_dims=192,
        depths=(2, 2, 18, 2),
        focal_levels=3,
        focal_windows=5,
        use_conv_embed=True,
        use_postln=True,
        use_layerscale=True,
        normalize_modulator=False,
        drop_path_rate=0.3,
        out_indices=(1, 2, 3),
        with_cp=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[384, 768, 1536], num_outs=num_levels, bias=True),
    encoder=dict(layer_cfg=dict(self_attn_cfg=dict(num_levels=num_levels))),
    decoder=dict(layer_cfg=dict(cross_attn_cfg=dict(num_levels=num_levels))))
