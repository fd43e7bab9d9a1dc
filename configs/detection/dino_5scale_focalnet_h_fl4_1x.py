# FocalNet-H (ImageNet-22K 224, 4 focal levels, windows 3) DINO, 5 scales, 12 epochs.
# The authors' H fl4 classification config adds a LayerNorm inside the modulation and
# does not normalize the modulator; H is released at 224 only, and not on GitHub: timm's
# copy on the Hugging Face hub (timm's key layout, no classifier), pinned to its upload
# commit; needs pip install '.[hub]' in the clone (docs/en/checkpoints.md).
_base_ = './dino_5scale_focalnet_l_fl4_1x.py'

pretrained = 'hf-hub:timm/focalnet_huge_fl4.ms_in22k@3656de2b341e473ad338da5f707ecd5ba48934e7'
model = dict(
    backbone=dict(
        embed_dims=352,
        use_postln_in_modulation=True,
        normalize_modulator=False,
        init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[352, 704, 1408, 2816]))
