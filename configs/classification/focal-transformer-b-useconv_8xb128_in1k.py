# Focal-B with overlapped patch embeddings (the authors' README 'useconv' row: a 7x7 stride-4
# stem, 3x3 stride-2 downsampling). README: 93.3M, 16.8 GFLOPs, 84.2 top-1. The authors'
# configs/focal_base_useconv_patch4_window7_224.yaml, trained with the paper's recipe (Sec. 4.1)
# where it differs from their config.py: drop path 0.3 (yaml: 0.5), no random erasing (0.25),
# warm-up from 1e-5 (1e-6), batch 1024 (get_started.md: 8 GPUs x 64 x 2 accumulation steps, the
# same). docs/en/classification_recipes.md lists every difference.
_base_ = [
    '../_base_/classification/focal_transformer.py',
    '../_base_/classification/imagenet_bs128_224_no_erasing.py',
    '../_base_/classification/adamw_300e_focal_transformer.py',
    'mmpretrain::_base_/default_runtime.py'
]

default_scope = 'mmpretrain'
custom_imports = dict(imports=['mmfocal'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        embed_dims=128,
        depths=(2, 2, 18, 2),
        num_heads=(4, 8, 16, 32),
        use_conv_embed=True,
        drop_path_rate=0.3),
    head=dict(in_channels=1024))
