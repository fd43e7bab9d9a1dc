# FocalNet-H (ImageNet-22K 224, 4 focal levels, windows 3) DINO, 5 scales, 12 epochs.
# The authors' H fl4 classification config adds a LayerNorm inside the modulation and
# does not normalize the modulator; H is released at 224 only (not on GitHub).
_base_ = './dino_5scale_focalnet_l_fl4_1x.py'

pretrained = 'https://projects4jw.blob.core.windows.net/focalnet/release/classification/focalnet_huge_lrf_224_fl4.pth'  # noqa
model = dict(
    backbone=dict(
        embed_dims=352,
        use_postln_in_modulation=True,
        normalize_modulator=False,
        init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[352, 704, 1408, 2816]))
