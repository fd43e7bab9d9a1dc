"""RPN and R-CNN heads of exported two-stage detectors: mmdet's proposals, the proposals
mmdet scores, Cascade R-CNN heads that regress a box per class, and Cascade R-CNN's masks.

mmdeploy 1.3.1's RPN runs one NMS over the boxes of all levels and keeps boxes of zero
width or height; mmdet's drops those (``min_bbox_size=0``) and runs NMS within each level,
so a box suppressed by one of another level in the graph is a proposal in mmdet, and the
R-CNN heads of the graph see other proposals (other detections, another AP). Here the
graph's RPN selects mmdet's proposals.

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
of its best class, as mmdet's ``CascadeRoIHead`` does (``regress_by_class``). Its masks
average the stages' logits, mmdet's their probabilities; here, the probabilities.

Registered for the onnxruntime backend whenever :mod:`mmfocal.deploy` is imported.
"""
import torch
from mmdeploy.codebase.mmdet.deploy import (get_post_processing_params,
                                            pad_with_value_if_necessary)
from mmdeploy.codebase.mmdet.models.task_modules.coders.delta_xywh_bbox_coder import \
    deltaxywhbboxcoder__decode
from mmdeploy.core import FUNCTION_REWRITER
from mmdeploy.mmcv.ops import multiclass_nms
from mmdet.structures.bbox import bbox2roi, bbox_cxcywh_to_xyxy, get_box_tensor
from mmengine.structures import InstanceData


def rpn_boxes_by_level(head, cls_scores, bbox_preds, img_shape, nms_pre: int):
    """The RPN's boxes before NMS: of each level its ``nms_pre`` best (padded with score 0
    where it has fewer; every anchor where ``nms_pre <= 0``), decoded and clipped to
    ``img_shape``. cls_scores/bbox_preds: the levels' (B, anchors * (1 or 2), H, W) and
    (B, anchors * 4, H, W). Returns boxes (B, N, 4) and scores (B, N, levels): a box's
    objectness in its level's column, 0 in the others."""
    levels = len(cls_scores)
    priors = head.prior_generator.grid_priors([s.shape[-2:] for s in cls_scores],
                                              device=cls_scores[0].device)
    boxes, scores = [], []
    for level, (cls_score, bbox_pred, prior) in enumerate(zip(cls_scores, bbox_preds, priors)):
        batch, size = cls_score.shape[0], head.bbox_coder.encode_size
        cls_score = cls_score.permute(0, 2, 3, 1)
        score = cls_score.reshape(batch, -1).sigmoid() if head.use_sigmoid_cls else \
            cls_score.reshape(batch, -1, 2).softmax(-1)[..., 0]
        delta = bbox_pred.permute(0, 2, 3, 1).reshape(batch, -1, size)
        prior = prior[None].expand(batch, -1, -1)
        if nms_pre > 0:
            score = pad_with_value_if_necessary(score, 1, nms_pre, 0.)
            delta = pad_with_value_if_necessary(delta, 1, nms_pre)
            prior = pad_with_value_if_necessary(prior, 1, nms_pre)
            score, best = score.topk(nms_pre)
            delta = delta.gather(1, best[..., None].expand(-1, -1, size))
            prior = prior.gather(1, best[..., None].expand(-1, -1, prior.shape[-1]))
        boxes.append(head.bbox_coder.decode(prior, delta, max_shape=img_shape))
        in_level = torch.arange(levels, device=score.device) == level
        scores.append(score[..., None] * in_level.to(score.dtype))
    return torch.cat(boxes, 1), torch.cat(scores, 1)


@FUNCTION_REWRITER.register_rewriter(
    func_name='mmdet.models.dense_heads.rpn_head.RPNHead.predict_by_feat',
    backend='onnxruntime')
def rpn_head__predict_by_feat__onnxruntime(self, cls_scores, bbox_preds, score_factors=None,
                                           batch_img_metas=None, cfg=None, rescale=False,
                                           with_nms=True, **kwargs):
    """The proposals, (B, max_per_img, 5) boxes and objectness (padded with zeros), and their
    levels (B, max_per_img), selected as mmdet's RPN selects them: of each level its ``nms_pre``
    best, boxes no wider or taller than ``min_bbox_size`` dropped, NMS within each level
    (mmdeploy's runs one NMS over all levels, after the post-processing's ``pre_top_k``),
    the best ``max_per_img`` kept."""
    cfg = self.test_cfg if cfg is None else cfg
    boxes, scores = rpn_boxes_by_level(self, cls_scores, bbox_preds,
                                       batch_img_metas[0]['img_shape'], cfg.get('nms_pre', -1))
    if cfg.get('min_bbox_size', -1) >= 0:
        width, height = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
        small = (width <= cfg.min_bbox_size) | (height <= cfg.min_bbox_size)
        scores = scores.masked_fill(small[..., None], 0.)
    if not with_nms:
        return boxes, scores
    post = get_post_processing_params(FUNCTION_REWRITER.get_context().cfg)
    keep = cfg.get('max_per_img', post.keep_top_k)
    return multiclass_nms(
        boxes, scores, keep, nms_type=cfg.nms.get('type'),
        iou_threshold=cfg.nms.get('iou_threshold', post.iou_threshold),
        score_threshold=cfg.get('score_thr', post.score_threshold), keep_top_k=keep)


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


def mean_probability_logits(mask_preds) -> torch.Tensor:
    """The logits whose sigmoid is the mean of the stages' mask probabilities: each of
    ``mask_preds`` (N, classes, h, w) logits of one stage."""
    mean = sum(pred.sigmoid() for pred in mask_preds) / len(mask_preds)
    return mean.log() - (1 - mean).log()


@FUNCTION_REWRITER.register_rewriter(
    func_name='mmdet.models.roi_heads.cascade_roi_head.CascadeRoIHead.predict_mask',
    backend='onnxruntime')
def cascade_roi_head__predict_mask__onnxruntime(self, x, batch_img_metas, results_list,
                                                rescale=False):
    """``CascadeRoIHead.predict_mask`` on the graph's detections (dets (B, N, 5), labels
    (B, N)): the stages' mask probabilities averaged, as mmdet's ``merge_aug_masks`` does
    (mmdeploy's averages their logits). Returns dets, labels and masks (B, N, h, w)."""
    dets, labels = results_list
    batch, num = dets.shape[:2]
    image = torch.arange(batch, device=dets.device, dtype=dets.dtype)
    rois = torch.cat([image.view(-1, 1, 1).expand(batch, num, 1), dets[..., :4]], -1)
    mask_preds = [self._mask_forward(stage, x, rois.view(-1, 5))['mask_preds']
                  for stage in range(self.num_stages)]
    masks = self.mask_head[-1].predict_by_feat(
        mean_probability_logits(mask_preds), results_list, batch_img_metas, self.test_cfg,
        rescale=rescale)
    return dets, labels, masks.reshape(batch, num, *masks.shape[-2:])


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
