# Focal-B (ImageNet-1K) UperNet, ADE20K 512x512, 160k iterations.
_base_ = [
    'mmseg::_base_/models/upernet_swin.py',
    '../_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/schedules/seg_adamw_160k.py'
]

custom_imports = dict(imports=['mmfocal'], allow_failed_imports=False)
# ImageNet-1K weights from the authors' release (see the README).
pretrained = 'checkpoints/focal-base-is224-ws7.pth'
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    pretrained=None,
    data_preprocessor=data_preprocessor,
    backbone=dict(
        _delete_=True,
        type='FocalTransformer',
        embed_dims=128,
        depths=(2, 2, 18, 2),
        num_heads=(4, 8, 16, 32),
        window_size=7,
        expand_size=3,
        focal_levels=2,
        focal_windows=(15, 13, 9, 7),
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[128, 256, 512, 1024], num_classes=150),
    auxiliary_head=dict(in_channels=512, num_classes=150))
