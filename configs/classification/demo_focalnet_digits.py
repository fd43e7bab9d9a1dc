# Demo: the Keras tutorial's FocalNet (focalnet-tutorial_1xb1024_cifar10.py) scaled down to
# train from scratch on a CPU in minutes, on scikit-learn's handwritten digits (1,797 real
# 8x8 scans, written as 32x32 PNGs by tools/dataset_converters/make_digits_data.py: 1,437
# training and 360 held-out test images, 10 classes). The same architecture (3 stages, patch
# 4, 2 focal levels of window 3, 48x48 inputs from 52x52 resized images, pixels / 255) at a
# smaller width and depth; no horizontal flip (digits are not mirror-symmetric); a shorter
# schedule with a larger lr at a smaller batch. `make demo-cls` (tools/demo.py cls) trains,
# tests and draws it.
_base_ = './focalnet-tutorial_1xb1024_cifar10.py'

data_root = 'data/demo/digits'
embed_dims = 32
model = dict(
    backbone=dict(embed_dims=embed_dims, depths=(1, 2, 1), drop_rate=0.),
    head=dict(in_channels=embed_dims * 4))

dataset = dict(
    type='CustomDataset', data_root=data_root, metainfo=dict(classes=tuple('0123456789')))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(52, 52), interpolation='bilinear'),
    dict(type='RandomCrop', crop_size=48),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(48, 48), interpolation='bilinear'),
    dict(type='PackInputs'),
]
loader = dict(num_workers=1, persistent_workers=True)
train_dataloader = dict(
    batch_size=32, **loader,
    dataset=dict(_delete_=True, **dataset, data_prefix='train', pipeline=train_pipeline))
# the held-out digits validate (once, after training) and test
val_dataloader = dict(
    batch_size=60, **loader,
    dataset=dict(_delete_=True, **dataset, data_prefix='test', pipeline=test_pipeline))
test_dataloader = val_dataloader

# From scratch at batch 32: a 10x higher lr than the tutorial's at batch 1024, the same
# warm-up share and cosine decay; 45 iterations per epoch.
max_epochs = 12
warmup_epochs = 0.15 * max_epochs
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=0., by_epoch=True, begin=warmup_epochs,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
auto_scale_lr = dict(base_batch_size=32)
default_hooks = dict(
    logger=dict(interval=15),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1, save_best=None))
randomness = dict(seed=0)
# The tutorial's TrainMonitor on 5 test digits (a 0, 2, 4, 6 and 8: the images are in class
# order), every 4 epochs and after the last.
custom_hooks = [
    dict(type='FocalMapsHook', interval=4, by_epoch=True, image_index=[0, 75, 150, 225, 300],
         stages=[1], style='tutorial', display_size=96)
]
