# FocalNet-L fl4 DINO, 5 scales, 36 epochs (mmdet's 36-epoch Swin-L DINO schedule).
_base_ = './dino_5scale_focalnet_l_fl4_1x.py'

max_epochs = 36
model = dict(backbone=dict(drop_path_rate=0.4))
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[27, 33],
         gamma=0.1)
]
