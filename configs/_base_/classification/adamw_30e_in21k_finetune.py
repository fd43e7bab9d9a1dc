# FocalNet's ImageNet-22K -> 1K fine-tuning (paper, appendix A): 30 epochs, AdamW, lr 3e-5,
# cosine (drop path 0.3 and no Mixup / CutMix are set by the configs). Where the paper is
# silent, Swin's 22K -> 1K fine-tuning recipe, which FocalNet's recipes follow (the FocalNet
# code has none): 5 warm-up epochs from 1e-3 x lr, cosine to 1e-2 x lr, weight decay 1e-8
# (microsoft/Swin-Transformer configs/swin/swin_base_patch4_window7_224_22kto1k_finetune.yaml);
# batch 1024, clipping and the no-decay groups as for ImageNet-1K.
_base_ = './adamw_300e.py'

optim_wrapper = dict(optimizer=dict(lr=3e-5, weight_decay=1e-8))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=5,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        eta_min=3e-7,
        by_epoch=True,
        begin=5,
        end=30,
        convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=30)
