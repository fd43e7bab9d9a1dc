"""R-CNN heads of exported two-stage detectors: the proposals mmdet scores, and Cascade
R-CNN heads that regress a box per class.

mmdeploy 1.3.1's graphs of RPN-based detectors hand the R-CNN head a fixed number of
proposals per image (the RPN's ``max_per_img``): where NMS leaves fewer, the rest are
(0, 0, 0, 0) padding, and proposals of zero width or height, which mmdet's RPN drops
(``min_bbox_size=0``), are kept. The head scores both; their class probabilities are about
1 / (classes + 1), above the score threshold of 0.05 for fewer than 19 classes, and the graph
returns them as detections that mmdet does not give, which lowers the AP. Here their
classification becomes background (probability 1), so the score threshold drops them;
heads with another classifier than a softmax over classes and background (sigmoid, custom
channels) are left as mmdeploy exports them.

mmdeploy's Cascade R-CNN refuses (a bare ``AssertionError``) heads that regress a box per
class, as the paper's Cascade Mask R-CNN does; here every stage refines each RoI by the box
of its best class, as mmdet's ``CascadeRoIHead`` does (``regress_by_class``).

Registered for the onnxruntime backend whenever :mod:`mmfocal.deploy` is imported.
"""
import torch
from mmdeploy.codebase.mmdet.models.task_modules.coders.delta_xywh_bbox_coder import \
    deltaxywhbboxcoder__decode
from mmdeploy.core import FUNCTION_REWRITER
from mmdet.structures.bbox import bbox2roi, bbox_cxcywh_to_xyxy, get_box_tensor
from mmengine.structures import InstanceData


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


def softmax_classifier(bbox_head) -> bool:
    """Whether the head's classification is a softmax over classes and background."""
    return not (bbox_head.custom_cls_channels or
                getattr(bbox_head.loss_cls, 'use_sigmoid', False))


def best_class_deltas(bbox_head, cls_score: torch.Tensor,
                      bbox_pred: torch.Tensor) -> torch.Tensor:
    """bbox_pred (N, classes * 4) or (N, 4) of class-agnostic heads -> (N, 4): each RoI's
    box deltas of its best class by cls_score (N, classes + 1), as ``regress_by_class``."""
    if bbox_head.reg_class_agnostic:
        return bbox_pred
    if bbox_head.custom_activation:
        cls_score = bbox_head.loss_cls.get_activation(cls_score)
    size = bbox_head.bbox_coder.encode_size
    best = cls_score[:, :-1].argmax(1)
    return bbox_pred.view(len(bbox_pred), -1, size).gather(
        1, best.view(-1, 1, 1).expand(-1, 1, size)).squeeze(1)


@FUNCTION_REWRITER.register_rewriter(
    func_name='mmdet.models.roi_heads.standard_roi_head.StandardRoIHead._bbox_forward',
    backend='onnxruntime')
def standard_roi_head__bbox_forward__onnxruntime(self, x, rois):
    """``StandardRoIHead._bbox_forward`` with empty RoIs classified as background."""
    results = FUNCTION_REWRITER.get_context().origin_func(self, x, rois)
    if softmax_classifier(self.bbox_head):
        results['cls_score'] = background_where_empty(results['cls_score'], rois)
    return results


@FUNCTION_REWRITER.register_rewriter(
    func_name='mmdet.models.roi_heads.cascade_roi_head.CascadeRoIHead.predict_bbox',
    backend='onnxruntime')
def cascade_roi_head__predict_bbox__onnxruntime(self, x, batch_img_metas, rpn_results_list,
                                                rcnn_test_cfg, rescale=False, **kwargs):
    """``CascadeRoIHead.predict_bbox`` on the graph's proposals (B, N, 5): stage s refines
    each RoI by its head's box of the RoI's best class (one box for class-agnostic heads),
    the stages' classification logits are averaged, and RoIs empty at the start are
    background; the last head's ``predict_by_feat`` (mmdeploy's) gives the detections."""
    proposals = rpn_results_list[0]
    batch, num = proposals.shape[:2]
    image = torch.arange(batch, dtype=proposals.dtype, device=proposals.device)
    rois = torch.cat([image.view(-1, 1, 1).expand(batch, num, 1), proposals[..., :4]], -1)
    rois = first = rois.view(-1, 5)
    stage_scores = []
    for stage, head in enumerate(self.bbox_head):
        results = self._bbox_forward(stage, x, rois, **kwargs)
        cls_score, bbox_pred = results['cls_score'], results['bbox_pred']
        stage_scores.append(cls_score)
        if stage < self.num_stages - 1:
            deltas = best_class_deltas(head, cls_score, bbox_pred).view(batch, num, -1)
            boxes = head.bbox_coder.decode(rois[:, 1:].view(batch, num, 4), deltas,
                                           max_shape=batch_img_metas[0]['img_shape'])
            rois = torch.cat([rois[:, :1], get_box_tensor(boxes).view(-1, 4)], 1)
    cls_score = sum(stage_scores) / len(stage_scores)
    if softmax_classifier(self.bbox_head[-1]):
        cls_score = background_where_empty(cls_score, first)
    return self.bbox_head[-1].predict_by_feat(
        rois=rois.view(batch, num, 5), cls_scores=cls_score.view(batch, num, -1),
        bbox_preds=bbox_pred.view(batch, num, -1), batch_img_metas=batch_img_metas,
        rcnn_test_cfg=rcnn_test_cfg, rescale=rescale)


@FUNCTION_REWRITER.register_rewriter(
    func_name='mmdet.models.task_modules.coders.delta_xywh_bbox_coder.'
    'DeltaXYWHBBoxCoder.decode',
    backend='onnxruntime')
def delta_xywh_bbox_coder__decode__onnxruntime(self, bboxes, pred_bboxes, max_shape=None,
                                               wh_ratio_clip=16 / 1000):
    """mmdeploy's ``DeltaXYWHBBoxCoder.decode``, which is right for batched boxes (B, N, 4)
    only (for (N, 4) its ``delta2bbox`` broadcasts x and y against each other and fails),
    also for boxes (N, 4) and deltas (N, 4 * classes): as a batch of one. mmdet's
    ``regress_by_class`` decodes so (Sparse R-CNN's stages)."""
    if bboxes.dim() == 2:
        return deltaxywhbboxcoder__decode(self, bboxes[None], pred_bboxes[None], max_shape,
                                          wh_ratio_clip)[0]
    return deltaxywhbboxcoder__decode(self, bboxes, pred_bboxes, max_shape, wh_ratio_clip)


@FUNCTION_REWRITER.register_rewriter(
    func_name='mmdet.models.roi_heads.sparse_roi_head.SparseRoIHead.predict_bbox',
    backend='onnxruntime')
def sparse_roi_head__predict_bbox__onnxruntime(self, x, batch_img_metas, rpn_results_list,
                                               rcnn_test_cfg, rescale=False):
    """``SparseRoIHead.predict_bbox`` as graph outputs [dets (B, K, 5), labels (B, K)],
    which mmdeploy 1.3.1 has no rewrite for: the stages refine the learnt proposals and
    their features, and the K = ``max_per_img`` best (proposal, class) scores of the last
    stage are the detections, as in mmdet (boxes in the input's scale; mmdeploy's backend
    model rescales)."""
    proposals = [res.bboxes for res in rpn_results_list]
    object_feats = torch.stack([res.features for res in rpn_results_list])
    for stage in range(self.num_stages):
        results = self._bbox_forward(stage, x, bbox2roi(proposals), object_feats,
                                     batch_img_metas)
        object_feats, proposals = results['object_feats'], results['detached_proposals']
    head, cls_score = self.bbox_head[-1], results['cls_score']
    scores = cls_score.sigmoid() if head.loss_cls.use_sigmoid else \
        cls_score.softmax(-1)[..., :-1]
    scores, best = scores.flatten(1).topk(self.test_cfg.max_per_img)
    boxes = torch.stack(proposals).gather(
        1, (best // head.num_classes)[..., None].expand(-1, -1, 4))
    return [torch.cat([boxes, scores[..., None]], -1), best % head.num_classes]


@FUNCTION_REWRITER.register_rewriter(
    func_name='mmdet.models.dense_heads.embedding_rpn_head.EmbeddingRPNHead.'
    '_decode_init_proposals',
    backend='onnxruntime')
def embedding_rpn_head__decode_init_proposals__onnxruntime(self, x, batch_data_samples):
    """Sparse R-CNN's learnt proposals scaled by the traced image size: mmdet builds the
    scale [w, h, w, h] with ``new_tensor``, which the trace keeps as a constant of the export
    size, so a dynamic graph's boxes were wrong at any other size."""
    proposals = bbox_cxcywh_to_xyxy(self.init_proposal_bboxes.weight)
    results = []
    for sample in batch_data_samples:
        shape = sample.metainfo['img_shape']  # traced (2,) tensor, ints in a static graph
        size = shape.to(proposals) if isinstance(shape, torch.Tensor) else \
            proposals.new_tensor(shape[:2])
        whwh = size[[1, 0, 1, 0]]
        result = InstanceData()
        result.bboxes = proposals * whwh
        result.imgs_whwh = whwh.expand(self.num_proposals, 4)
        result.features = self.init_proposal_features.weight.clone()
        results.append(result)
    return results
