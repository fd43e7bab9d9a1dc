# Focal-S with overlapped patch embeddings (the authors' README 'useconv' row: a 7x7 stride-4
# stem, 3x3 stride-2 downsampling). README: 53.1M, 9.7 GFLOPs, 83.8 top-1. The authors'
# configs/focal_small_useconv_patch4_window7_224.yaml, trained with the paper's recipe (Sec. 4.1)
# where it differs from their config.py: drop path 0.2 (yaml: 0.3), no random erasing (0.25),
# warm-up from 1e-5 (1e-6), batch 1024. docs/en/classification_recipes.md lists every difference.
_base_ = './focal-transformer-s_8xb128_in1k.py'

model = dict(backbone=dict(use_conv_embed=True))
