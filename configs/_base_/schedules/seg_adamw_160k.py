# 160k iterations, AdamW lr 6e-5, weight decay 0.01 except on normalisation layers and
# position-bias tables, linear warm-up over 1500 iterations then poly decay (power 1).
# The lr is for batch 16 (8 GPUs x 2 images): `tools/train.py --auto-scale-lr` rescales it.
_base_ = 'mmseg::_base_/schedules/schedule_160k.py'

optim_wrapper = dict(
    optimizer=dict(
        _delete_=True, type='AdamW', lr=0.00006, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(
        custom_keys={
            'norm': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
        }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False)
]
auto_scale_lr = dict(enable=False, base_batch_size=16)
