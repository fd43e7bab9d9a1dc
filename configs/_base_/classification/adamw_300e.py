# The authors' ImageNet-1K schedule (both papers): 300 epochs at batch 1024; AdamW, lr
# 5e-4 x 1024 / 512 = 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0.05 except on 1-D
# parameters and biases (norms, layer scales) and position-bias tables; linear warm-up over
# 20 epochs from 1e-6, then cosine to 1e-5 (the authors' warm-up and minimum lr, scaled like
# the lr), both stepped per iteration as their timm scheduler is; gradient norm clipped at 5.
# tools/train.py --auto-scale-lr rescales the lr for another total batch.
_base_ = 'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py'

optim_wrapper = dict(clip_grad=dict(max_norm=5.0))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
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
train_cfg = dict(max_epochs=300)
