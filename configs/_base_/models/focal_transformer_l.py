# Focal-L (ImageNet-22K) at detection and segmentation sizes: Focal-T's windows with
# Swin-L's widths and depths. Configs build their backbone from it with
# ``dict(_base_.focal_transformer_l, _delete_=True, drop_path_rate=..., init_cfg=...)``.
focal_transformer_l = dict(
    type='FocalTransformer',
    embed_dims=192,
    depths=(2, 2, 18, 2),
    num_heads=(6, 12, 24, 48),
    window_size=7,
    expand_size=3,
    focal_levels=2,
    focal_windows=(15, 13, 9, 7))
