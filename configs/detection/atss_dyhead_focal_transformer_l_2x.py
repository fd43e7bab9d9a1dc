# Focal-L (ImageNet-22K) ATSS + DyHead (6 blocks) 2x, multi-scale training (short side
# 480..1200, long side at most 2000): mmdet's Swin-L DyHead recipe with the backbone swapped;
# Focal-L's stages 1..3 have the same widths as Swin-L's (384, 768, 1536).
_base_ = [
    'mmdet::dyhead/atss_swin-l-p4-w12_fpn_dyhead_ms-2x_coco.py',
    '../_base_/models/focal_transformer_l.py'
]

custom_imports = dict(imports=['mmfocal'], allow_failed_imports=False)
# Focal-L ImageNet-22K weights were not released: put your own checkpoint there.
pretrained = 'checkpoints/focal-large-in22k.pth'
model = dict(
    backbone=dict(
        _base_.focal_transformer_l,
        _delete_=True,
        drop_path_rate=0.3,
        out_indices=(1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
