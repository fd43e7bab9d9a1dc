# Demo: the FocalNet UperNet on the synthetic shapes, the same run as
# demo_upernet_focal_transformer.py with the backbone of upernet_focalnet_t_512x512_160k_ade20k.py
# (the two ADE20K configs differ only in the backbone) at the demo's width and depth.
_base_ = './demo_upernet_focal_transformer.py'

model = dict(
    backbone=dict(
        _delete_=True, type='FocalNet', embed_dims=32, depths=(1, 1, 2, 1), focal_levels=2,
        focal_windows=9, drop_path_rate=0., init_cfg=None))
