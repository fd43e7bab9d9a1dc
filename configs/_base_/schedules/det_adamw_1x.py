# 12 epochs, AdamW lr 1e-4, weight decay 0.05 except on normalisation layers and
# position-bias tables, lr x0.1 after epochs 9 and 11 (the FocalNet authors' detection
# schedule; mmdet's stock 1x decays after 8 and 11), linear warm-up over 500 iterations
# from 0.001 x lr (mmdet 2's schedule_1x.py, which the authors' configs inherit unchanged).
# The lr is for batch 16 (8 GPUs x 2 images): `tools/train.py --auto-scale-lr` rescales it.
_base_ = 'mmdet::_base_/schedules/schedule_1x.py'

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[9, 11],
        gamma=0.1)
]
# 'norm' matches every LayerNorm of FocalNet and Focal Transformer (norm1, norm2,
# patch_embed.norm, downsample.norm, norm0..3); the bias-table key also matches
# Focal Transformer's ..._to_neighbors and ..._to_windows.k tables.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        _delete_=True, type='AdamW', lr=0.0001, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(
        custom_keys={
            'norm': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
        }))
auto_scale_lr = dict(enable=False, base_batch_size=16)
