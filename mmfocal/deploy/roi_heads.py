"""The R-CNN head of an exported two-stage detector scores only the proposals mmdet keeps.

mmdeploy 1.3.1's graphs of RPN-based detectors hand the R-CNN head a fixed number of
proposals per image (the RPN's ``max_per_img``): where NMS leaves fewer, the rest are
(0, 0, 0, 0) padding, and proposals of zero width or height, which mmdet's RPN drops
(``min_bbox_size=0``), are kept. The head scores both; their class probabilities are about
1 / (classes + 1), above the score threshold of 0.05 for fewer than 19 classes, and the graph
returns them as detections that mmdet does not give, which lowers the AP. Here their
classification becomes background (probability 1), so the score threshold drops them; heads
with another classifier than a softmax over classes and background (sigmoid, custom
channels) are left as mmdeploy exports them.
Registered for the onnxruntime backend whenever :mod:`mmfocal.deploy` is imported.
"""
import torch
from mmdeploy.core import FUNCTION_REWRITER


def background_where_empty(cls_score: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
    """cls_score (N, classes + 1) softmax logits, background last; rois (N, 5) as
    (image, x1, y1, x2, y2). Rows of empty RoIs become logits of probability 1 for
    background."""
    width, height = rois[:, 3] - rois[:, 1], rois[:, 4] - rois[:, 2]
    empty = ((width <= 0) | (height <= 0))[:, None]
    lowest = torch.finfo(cls_score.dtype).min
    background = torch.cat([cls_score.new_full((1, cls_score.shape[1] - 1), lowest),
                            cls_score.new_zeros((1, 1))], dim=1)
    return torch.where(empty, background, cls_score)


@FUNCTION_REWRITER.register_rewriter(
    func_name='mmdet.models.roi_heads.standard_roi_head.StandardRoIHead._bbox_forward',
    backend='onnxruntime')
def standard_roi_head__bbox_forward__onnxruntime(self, x, rois):
    """``StandardRoIHead._bbox_forward`` with empty RoIs classified as background."""
    results = FUNCTION_REWRITER.get_context().origin_func(self, x, rois)
    head = self.bbox_head
    if not (head.custom_cls_channels or getattr(head.loss_cls, 'use_sigmoid', False)):
        results['cls_score'] = background_where_empty(results['cls_score'], rois)
    return results
