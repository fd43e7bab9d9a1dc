# Focal-B with overlapped patch embeddings (the authors' README 'useconv' row: a 7x7 stride-4
# stem, 3x3 stride-2 downsampling). README: 93.3M, 16.8 GFLOPs, 84.2 top-1. The authors'
# configs/focal_base_useconv_patch4_window7_224.yaml, trained with the paper's recipe (Sec. 4.1)
# where it differs from their config.py: drop path 0.3 (yaml: 0.5), no random erasing (0.25),
# warm-up from 1e-5 (1e-6), batch 1024 (get_started.md: 8 GPUs x 64 x 2 accumulation steps, the
# same). docs/en/classification_recipes.md lists every difference.
_base_ = './focal-transformer-b_8xb128_in1k.py'

model = dict(backbone=dict(use_conv_embed=True))
