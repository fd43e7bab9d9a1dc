# ImageNet-1K at 224 as both papers' authors train and test (timm's create_transform in
# their data/build.py): mmpretrain's Swin pipeline is the same one field for field.
# Train: RandomResizedCrop 224 (scale 0.08-1, ratio 3/4-4/3, bicubic), horizontal flip,
# RandAugment rand-m9-mstd0.5-inc1 (timm ignores the colour jitter of 0.4 when RandAugment
# is on), random erasing 0.25 in 'pixel' mode (normal noise in the normalised space).
# Test: resize the short side to int(256 / 224 * 224) = 256, bicubic, centre crop 224.
# 128 images per GPU; the configs are named for 8 GPUs (batch 1024, the lr's batch).
_base_ = 'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py'

train_dataloader = dict(batch_size=128)
val_dataloader = dict(batch_size=128)
test_dataloader = dict(batch_size=128)
