"""Parameters and FLOPs of a config's model for one input of a fixed size.

FLOPs are counted as the papers count them: multiply-adds, one image, 1280x800 (W x H)
for detection, 512x2048 (H x W) for segmentation and the test crop (224x224, 384x384) for
image classification by default, through mmengine's
``FlopAnalyzer`` (a trace of the aten ops: convolutions, linear layers, matmul / bmm /
einsum, norms, interpolation). The model runs in ``tensor`` mode: a detector's backbone,
neck and heads, a segmentor's backbone and decode head (the auxiliary head runs only in
training, so it is not counted). Two-stage detectors follow mmdet 2.x's
``forward_dummy``, which the papers' counts used: box heads on 1000 proposals, mask heads
on 100 of them, every cascade stage included.

Attention written as ``q @ k.transpose(-2, -1)`` and ``attn @ v`` is traced as matmul
and counted; ``F.scaled_dot_product_attention``, which the counter does not know, is
counted here by :func:`sdpa_flop` (the same two products). Element-wise products and
softmax are not counted, in the papers' counters either.

    python tools/analysis/get_flops.py configs/detection/mask_rcnn_focalnet_t_1x.py
    python tools/analysis/get_flops.py CONFIG --shape 640 2560
"""
import argparse
import logging
from inspect import signature
from math import prod
from typing import Any, Dict, List, Optional, Tuple

import torch
from mmengine.analysis import FlopAnalyzer, parameter_count
from mmengine.analysis.jit_handles import get_shape
from mmengine.config import Config, DictAction
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope

from mmfocal.registry import toolbox_of

DEFAULT_SHAPES = {'mmdet': (800, 1280), 'mmseg': (512, 2048)}
MASK_ROIS = 100  # RoIs the mask heads are counted on, 1000 for the box heads


def crop_shape(cfg: Config) -> Tuple[int, int]:
    """(H, W) of a classification config's test images: its test pipeline's crop."""
    for step in cfg.test_dataloader.dataset.pipeline:
        if step['type'] == 'CenterCrop':
            size = step['crop_size']
            return (size, size) if isinstance(size, int) else (size[1], size[0])
    raise ValueError('a classification config needs a CenterCrop in its test pipeline to '
                     'choose its FLOPs input')


def default_shape(cfg: Config) -> Tuple[int, int]:
    """The input size a config's FLOPs are counted at when none is given."""
    task = toolbox_of(cfg)
    return crop_shape(cfg) if task == 'mmpretrain' else DEFAULT_SHAPES[task]


def sdpa_flop(inputs: List[Any], outputs: List[Any]) -> int:
    """Multiply-adds of ``aten::scaled_dot_product_attention``: q k^T and attn v,
    q (..., Lq, E), k (..., Lk, E), v (..., Lk, Ev)."""
    q, k, v = (get_shape(x) for x in inputs[:3])
    batch = prod(q[:-2])
    return batch * q[-2] * k[-2] * (q[-1] + v[-1])


class TensorForward(torch.nn.Module):
    """``model(inputs, data_samples, mode='tensor')`` as a one-argument module to trace.

    Two-stage detectors run as the papers counted them (mmdet 2.x ``forward_dummy``):
    the RPN's convolutions, then the RoI heads on a fixed set of ``num_proposals`` boxes
    instead of the test-time proposals, whose number depends on the weights (query-based
    heads such as Sparse R-CNN's keep their own proposals).
    """

    def __init__(self, model: torch.nn.Module, data_samples: Optional[list],
                 num_proposals: int = 1000):
        super().__init__()
        self.model = model
        self.data_samples = data_samples
        self.num_proposals = num_proposals

    def forward(self, inputs: torch.Tensor):
        model = self.model
        head = getattr(model, 'decode_head', None)
        if head is not None and 'batch_data_samples' in signature(head.forward).parameters:
            # mmseg's Mask2Former head reads the input size from the data samples
            return head(model.extract_feat(inputs), seg_data_samples(inputs.shape[-2:]))
        if not getattr(model, 'with_roi_head', False):
            return model(inputs, self.data_samples, mode='tensor')
        x = model.extract_feat(inputs)
        if hasattr(model.rpn_head, 'init_proposal_features'):
            proposals = model.rpn_head.predict(x, self.data_samples)
            return model.roi_head.forward(x, proposals, self.data_samples)
        from mmengine.structures import InstanceData
        rpn_outs = model.rpn_head(x)
        proposals = [InstanceData(bboxes=fixed_boxes(self.num_proposals, inputs.shape[-2:]))]
        return rpn_outs, model.roi_head.forward(x, proposals, self.data_samples)


def seg_data_samples(shape: Tuple[int, int]) -> list:
    from mmseg.structures import SegDataSample
    shape = tuple(shape)
    return [SegDataSample(metainfo=dict(img_shape=shape, ori_shape=shape, pad_shape=shape,
                                        batch_input_shape=shape))]


def fixed_boxes(count: int, shape: Tuple[int, int]) -> torch.Tensor:
    """``count`` reproducible boxes (x0, y0, x1, y1) inside an image of ``shape``."""
    gen = torch.Generator().manual_seed(0)
    h, w = shape
    xy = torch.rand(count, 2, generator=gen) * torch.tensor([w, h]) * 0.75
    wh = (torch.rand(count, 2, generator=gen) * 0.2 + 0.05) * torch.tensor([w, h])
    return torch.cat([xy, xy + wh], dim=1)


def mask_head_inputs(model: torch.nn.Module) -> Tuple[Dict[str, list], list]:
    """Record the number of RoIs each mask head sees: ``{module name: [count]}``, and the
    hooks' handles."""
    seen: Dict[str, list] = {}
    roi_head = getattr(model, 'roi_head', None)
    heads = getattr(roi_head, 'mask_head', None)
    if heads is None:
        return seen, []
    named = heads.named_children() if isinstance(heads, torch.nn.ModuleList) else [('', heads)]
    handles = []
    for name, head in named:
        key = 'model.roi_head.mask_head' + (f'.{name}' if name else '')
        seen[key] = []
        handles.append(head.register_forward_pre_hook(
            lambda module, args, key=key: seen[key].append(args[0].shape[0])))
    return seen, handles


def build_model(cfg: Config) -> torch.nn.Module:
    """The config's model, initialised without pretrained weights, in eval mode
    (initialised as for training: Sparse R-CNN's proposal boxes must start valid)."""
    from mmengine.registry import MODELS
    from mmengine.model.utils import revert_sync_batchnorm
    init_default_scope(toolbox_of(cfg))
    cfg.model.get('backbone', {}).pop('init_cfg', None)
    if 'pretrained' in cfg.model:
        cfg.model.pretrained = None
    model = MODELS.build(cfg.model)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # init_weights logs every parameter
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
    return revert_sync_batchnorm(model).eval()


def data_samples_for(task: str, shape: Tuple[int, int]) -> Optional[list]:
    """What a detector's test-time heads read from the image meta data."""
    if task != 'mmdet':
        return None
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    meta = dict(img_shape=shape, ori_shape=shape, pad_shape=shape,
                batch_input_shape=shape, scale_factor=(1., 1.))
    # Sparse R-CNN's tensor forward unpacks (empty) ground truth
    empty = InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))
    return [DetDataSample(metainfo=meta, gt_instances=empty)]


def count_flops(model: torch.nn.Module, task: str, shape: Tuple[int, int],
                show_table: bool = False, num_proposals: int = 1000) -> int:
    """Multiply-adds of ``model`` (built by :func:`build_model`) on a (1, 3, H, W) input,
    two-stage heads on ``num_proposals`` boxes (see :class:`TensorForward`).

    The trace runs in the caller's gradient mode: this tool counts under
    ``torch.no_grad()``, mmdet's and mmseg's own get_flops.py with gradients enabled;
    mmfocal's backbones trace the same operations in both (tests/test_tracing.py).
    """
    inputs = torch.zeros(1, 3, *shape)
    wrapper = TensorForward(model, data_samples_for(task, shape), num_proposals)
    mask_rois, handles = mask_head_inputs(model)
    analyzer = FlopAnalyzer(wrapper, (inputs, ))
    analyzer.set_op_handle('aten::scaled_dot_product_attention', sdpa_flop)
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    try:
        flops = analyzer.total()
    finally:
        for handle in handles:
            handle.remove()
    # Mask heads count on at most MASK_ROIS RoIs (mmdet 3 cascades run them on all).
    by_module = analyzer.by_module()
    for key, counts in mask_rois.items():
        if counts and int(counts[0]) > MASK_ROIS:
            flops -= round(by_module[key] * (1 - MASK_ROIS / int(counts[0])))
    if show_table:
        from mmengine.analysis import flop_count_table
        print(flop_count_table(analyzer, max_depth=3))
    return flops


def complexity(cfg: Config, shape: Optional[Tuple[int, int]] = None,
               show_table: bool = False) -> Tuple[int, int]:
    """(params, multiply-adds) of ``cfg``'s model on a (1, 3, H, W) input."""
    task = toolbox_of(cfg)
    shape = tuple(shape or default_shape(cfg))
    model = build_model(cfg)
    params = parameter_count(model)['']
    with torch.no_grad():
        flops = count_flops(model, task, shape, show_table)
    return params, flops


def parse_args():
    parser = argparse.ArgumentParser(description='Params and FLOPs of a config\'s model')
    parser.add_argument('config', help='config file')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='input size (default: 800 1280 detection, 512 2048 segmentation, '
                        'the test crop for classification)')
    parser.add_argument('--show-table', action='store_true', help='FLOPs per module')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config entries')
    return parser.parse_args()


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    shape = args.shape or default_shape(cfg)
    params, flops = complexity(cfg, shape, args.show_table)
    print(f'config: {args.config}\ninput: 1x3x{shape[0]}x{shape[1]}\n'
          f'params: {params / 1e6:.2f} M\nFLOPs: {flops / 1e9:.1f} G (multiply-adds)')


if __name__ == '__main__':
    main()
