# Demo: the FocalNet-T Mask R-CNN config shrunk to train from scratch on a CPU in minutes,
# on the synthetic shapes of tools/dataset_converters/make_demo_data.py (160x160 images,
# 4 classes). Only what must shrink differs from mask_rcnn_focalnet_t_1x.py: the data,
# the image scale, the widths and depths, the number of RoIs and the schedule.
_base_ = './mask_rcnn_focalnet_t_1x.py'

data_root = 'data/demo/coco/'
metainfo = dict(
    classes=('circle', 'square', 'triangle', 'star'),
    palette=[(220, 40, 40), (40, 80, 220), (40, 180, 60), (240, 170, 20)])
num_classes = 4
embed_dims = 32
width = 64  # FPN, RPN and RoI-head channels (256 in the full config)

model = dict(
    backbone=dict(
        embed_dims=embed_dims, depths=(1, 1, 2, 1), drop_path_rate=0., init_cfg=None),
    neck=dict(in_channels=[embed_dims * 2**i for i in range(4)], out_channels=width),
    rpn_head=dict(in_channels=width, feat_channels=width),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=width),
        bbox_head=dict(in_channels=width, fc_out_channels=256, num_classes=num_classes),
        mask_roi_extractor=dict(out_channels=width),
        mask_head=dict(in_channels=width, conv_out_channels=width, num_classes=num_classes)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=300),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=100),
        rcnn=dict(max_per_img=20)))

img_scale = (160, 160)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
dataset = dict(data_root=data_root, metainfo=metainfo)
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    dataset=dict(**dataset, filter_cfg=dict(min_size=8), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8, num_workers=1, dataset=dict(**dataset, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

# From scratch: a 10x higher lr than the pretrained 1x recipe, a short warm-up, one decay.
max_epochs = 8
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True,
         milestones=[7], gamma=0.1)
]
optim_wrapper = dict(optimizer=dict(lr=1e-3))
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
randomness = dict(seed=0)
# Gates and modulators of stages 1..3 over the first validation image, every 80 iterations
# (10 times per run), in the visualizer's backends (work_dirs/.../vis_data/vis_image).
custom_hooks = [dict(type='FocalMapsHook', interval=80, stages=[1, 2, 3])]
