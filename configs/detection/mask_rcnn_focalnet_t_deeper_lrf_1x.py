# FocalNet-T (deeper) (LRF, 3 focal levels) Mask R-CNN 1x.
_base_ = './mask_rcnn_focalnet_t_deeper_1x.py'

# Same ImageNet weights as the SRF model: the third level's kernel starts from
# init and its gate from zero (paper Table 15).
model = dict(backbone=dict(focal_levels=3))
