# Focal-T (Focal Transformer paper, Table 1) at detection and segmentation sizes: the
# pooled level sees 15, 13, 9, 7 windows around each window in stages 0..3 (7, 5, 3, 1 at
# ImageNet 224). Configs build their backbone from it with
# ``dict(_base_.focal_transformer_t, _delete_=True, drop_path_rate=..., init_cfg=...)``.
focal_transformer_t = dict(
    type='FocalTransformer',
    embed_dims=96,
    depths=(2, 2, 6, 2),
    num_heads=(3, 6, 12, 24),
    window_size=7,
    expand_size=3,
    focal_levels=2,
    focal_windows=(15, 13, 9, 7))
