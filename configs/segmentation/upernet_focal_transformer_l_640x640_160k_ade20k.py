# Focal-L (ImageNet-22K) UperNet, ADE20K 640x640, 160k iterations.
_base_ = [
    'mmseg::_base_/models/upernet_swin.py',
    '../_base_/datasets/ade20k_640x640.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/schedules/seg_adamw_160k.py',
    '../_base_/models/focal_transformer_l.py'
]

custom_imports = dict(imports=['mmfocal'], allow_failed_imports=False)
# Focal-L ImageNet-22K weights were not released: put your own checkpoint there.
pretrained = 'checkpoints/focal-large-in22k.pth'
crop_size = (640, 640)
data_preprocessor = dict(size=crop_size)
model = dict(
    pretrained=None,
    data_preprocessor=data_preprocessor,
    backbone=dict(
        _base_.focal_transformer_l,
        _delete_=True,
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[192, 384, 768, 1536], num_classes=150),
    auxiliary_head=dict(in_channels=768, num_classes=150))
