# FocalNet-T (deeper) (SRF) UperNet, ADE20K 512x512, 160k iterations.
_base_ = [
    'mmseg::_base_/models/upernet_swin.py',
    '../_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/schedules/seg_adamw_160k.py'
]

custom_imports = dict(imports=['mmfocal'], allow_failed_imports=False)
# The deeper FocalNets' ImageNet-1K weights were never published (docs/en/checkpoints.md,
# "Where the weights live"): put your own checkpoint there (the LRF variant loads the SRF
# weights and adds a level).
pretrained = 'checkpoints/focalnet_tiny_deeper_srf.pth'
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    pretrained=None,
    data_preprocessor=data_preprocessor,
    backbone=dict(
        _delete_=True,
        type='FocalNet',
        embed_dims=64,
        depths=(3, 3, 16, 3),
        focal_levels=2,
        focal_windows=9,
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[64, 128, 256, 512], num_classes=150),
    auxiliary_head=dict(in_channels=256, num_classes=150))
