# Focal-T (ImageNet-1K) UperNet, ADE20K 512x512, 160k iterations.
_base_ = [
    'mmseg::_base_/models/upernet_swin.py',
    '../_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/schedules/seg_adamw_160k.py',
    '../_base_/models/focal_transformer_t.py'
]

custom_imports = dict(imports=['mmfocal'], allow_failed_imports=False)
# PaddleViT's port of the authors' Focal-T ImageNet-1K weights (plain patch embedding,
# 82.03 top-1), downloaded by hand: docs/en/checkpoints.md, "Focal Transformer ports".
pretrained = 'checkpoints/focal_tiny_patch4_window7_224.pdparams'
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    pretrained=None,
    data_preprocessor=data_preprocessor,
    backbone=dict(
        _base_.focal_transformer_t,
        _delete_=True,
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[96, 192, 384, 768], num_classes=150),
    auxiliary_head=dict(in_channels=384, num_classes=150))
