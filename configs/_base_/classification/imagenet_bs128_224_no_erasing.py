# ImageNet-1K at 224 for Focal Transformer: the 224 pipeline without random erasing, which
# the paper (Sec. 4.1) leaves out of its DeiT augmentation (the authors' config.py has
# REPROB 0.25; docs/en/classification_recipes.md lists the differences).
_base_ = './imagenet_bs128_224.py'

bgr_mean = [103.53, 116.28, 123.675]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='RandAugment',
        policies='timm_increasing',
        num_policies=2,
        total_level=10,
        magnitude_level=9,
        magnitude_std=0.5,
        hparams=dict(pad_val=[round(x) for x in bgr_mean], interpolation='bicubic')),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
