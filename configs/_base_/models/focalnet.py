# The authors' FocalNet variants (microsoft/FocalNet classification configs and model
# builders) as released for ImageNet: widths, depths, focal levels and the first level's
# kernel (focal window), and the flags of the large models. Dense configs keep a variant's
# structure and widen the kernels (focal_windows=9, or (11, 9, 9, 7)); tests build their
# models from these dicts, so that tests and configs cannot disagree. Only L fl4 divides
# the modulator by L + 1 (the authors' large_fl4; not XL fl4 or H fl4); H adds the
# LayerNorm before the modulation's projection.
focalnet_t_srf = dict(type='FocalNet', embed_dims=96, depths=(2, 2, 6, 2), focal_levels=2,
                      focal_windows=3)
focalnet_t_lrf = dict(focalnet_t_srf, focal_levels=3)
focalnet_s_srf = dict(focalnet_t_srf, depths=(2, 2, 18, 2))
focalnet_s_lrf = dict(focalnet_s_srf, focal_levels=3)
focalnet_b_srf = dict(focalnet_s_srf, embed_dims=128)
focalnet_b_lrf = dict(focalnet_b_srf, focal_levels=3)
# deeper and thinner (paper Table 4)
focalnet_t_deeper = dict(focalnet_t_srf, embed_dims=64, depths=(3, 3, 16, 3))
focalnet_s_deeper = dict(focalnet_t_srf, embed_dims=64, depths=(4, 4, 28, 4))
focalnet_b_deeper = dict(focalnet_t_srf, embed_dims=96, depths=(4, 4, 28, 4))
# ImageNet-22K
focalnet_l_fl3 = dict(focalnet_s_srf, embed_dims=192, focal_levels=3, focal_windows=5,
                      use_conv_embed=True, use_postln=True, use_layerscale=True)
focalnet_l_fl4 = dict(focalnet_l_fl3, focal_levels=4, focal_windows=3,
                      normalize_modulator=True)
focalnet_xl_fl3 = dict(focalnet_l_fl3, embed_dims=256)
focalnet_xl_fl4 = dict(focalnet_xl_fl3, focal_levels=4, focal_windows=3)
focalnet_h_fl3 = dict(focalnet_l_fl3, embed_dims=352, focal_windows=3,
                      use_postln_in_modulation=True)
focalnet_h_fl4 = dict(focalnet_h_fl3, focal_levels=4)
# isotropic: one stage of 16x16 patches (paper Table 3); the authors' base_iso builder adds
# post-norm and layer scale
focalnet_t_iso = dict(type='FocalNet', embed_dims=192, depths=(12, ), patch_size=16,
                      focal_levels=3, focal_windows=3)
focalnet_s_iso = dict(focalnet_t_iso, embed_dims=384)
focalnet_b_iso = dict(focalnet_t_iso, embed_dims=768, use_postln=True, use_layerscale=True)
