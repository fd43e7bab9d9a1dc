# Focal Transformer's ImageNet-1K schedule: the 300-epoch schedule with the paper's warm-up
# from 1e-5 (Sec. 4.1), 0.01 x lr; the authors' config.py warms up from 5e-7 x 1024 / 512 =
# 1e-6. Everything else is the paper's and the code's alike.
_base_ = './adamw_300e.py'

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-2,
        by_epoch=True,
        begin=0,
        end=20,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-5,
        by_epoch=True,
        begin=20,
        end=300,
        convert_to_iter_based=True)
]
