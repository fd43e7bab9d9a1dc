"""Convert FocalNet / Focal Transformer weights to mmfocal's layout.

Reads, with ``torch.load(weights_only=True)`` (``.pdparams``: with
``mmfocal.models.pdparams``, numpy only, running none of the file's code):

- ImageNet checkpoints in the authors' layout (``{'model': ...}``), timm's layout or
  Hugging Face's (``FocalNetModel``, ``FocalNetForImageClassification``,
  ``FocalNetBackbone``), ``.pth`` or ``.safetensors``, and PaddleViT's Focal Transformer
  ports (``.pdparams``, Linear weights stored (in, out): transposed back): writes the
  backbone's state dict (classifier ``head`` / ``norm`` and size-dependent buffers
  dropped), ready for ``init_cfg=dict(type='Pretrained', checkpoint=DST)``;
- whole detectors / segmentors (the authors' mmdet 2.x / mmseg 0.x releases, or any
  checkpoint with keys under ``backbone.``): writes the whole model for
  ``tools/test.py CONFIG DST``. The backbone goes through the same conversion; the
  training state (``optimizer``, ``meta``) is dropped.

With ``--config`` of an image classifier (configs/classification), an ImageNet checkpoint
in any of these layouts is written whole for that classifier (``backbone.*`` with the
final ``norm``, ``head.fc.*``), for ``load_from`` or ``tools/test.py CONFIG DST``.

The output is ``{'state_dict': ...}``. With ``--config`` the result is checked against
the config's model: every model key must be present with its shape (whole models), or
adaptable by ``mmfocal.models.checkpoint.adapt_state_dict`` (backbones); any difference
is an error that lists the keys.

Usage::

    python tools/model_converters/convert_focalnet.py focalnet_tiny_srf.pth tiny.pth
    python tools/model_converters/convert_focalnet.py \\
        focal_tiny_patch4_window7_224.pdparams focal_t.pth \\
        --config configs/detection/retinanet_focal_transformer_t_1x.py
    python tools/model_converters/convert_focalnet.py \\
        focalnet_tiny_srf_maskrcnn_1x.pth maskrcnn_t.pth \\
        --config configs/detection/mask_rcnn_focalnet_t_1x.py
"""
import argparse
import re
import sys
from typing import Dict, List

import torch

from mmfocal.models.checkpoint import (CheckpointError, LoadReport, adapt_state_dict,
                                       compare_state_dicts, expected_gap, known_rules,
                                       read_checkpoint, rules_of, to_authors_layout,
                                       to_classifier, unwrap)

StateDict = Dict[str, torch.Tensor]

# Key renames from mmdet 2.x / mmseg 0.x models to mmdet 3 / mmseg 1 models, for the
# detectors and segmentors of configs/. mmdet 3.3 and mmseg 1.2 kept the module names of
# Mask R-CNN, Cascade Mask R-CNN, ATSS, RetinaNet, Sparse R-CNN, HTC and UperNet, so
# outside the backbone only a data-parallel wrapper's ``module.`` is removed.
HEAD_RENAMES = [(re.compile(r'^module\.'), '')]


def is_whole_model(checkpoint) -> bool:
    """True for a detector / segmentor: keys under ``backbone.`` beside other modules."""
    state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else {}
    keys = [re.sub(r'^module\.', '', k) for k in state if isinstance(k, str)]
    return any(k.startswith('backbone.') for k in keys) and \
        any(not k.startswith('backbone.') for k in keys)


def convert_backbone(checkpoint, prefix=None, report: LoadReport = None) -> StateDict:
    """The backbone's state dict in mmfocal's (the authors') layout, without the
    classifier and the buffers that depend on the input size, by the rules of every
    registered backbone."""
    report = report if report is not None else LoadReport()
    rules = known_rules()
    state = to_authors_layout(unwrap(checkpoint, prefix, report, rules), rules, report)
    out = {}
    for key, value in state.items():
        why = rules.dropped(key)
        if why:
            report.dropped.append(f'{key} ({why})')
        else:
            out[key] = value
    return out


def convert_heads(state: StateDict) -> StateDict:
    """Every non-backbone key of a whole model, renamed to mmdet 3 / mmseg 1."""
    out = {}
    for key, value in state.items():
        for pattern, repl in HEAD_RENAMES:
            key = pattern.sub(repl, key)
        if not key.startswith('backbone.'):
            out[key] = value
    return out


def convert_whole_model(checkpoint, report: LoadReport) -> StateDict:
    state = checkpoint.get('state_dict', checkpoint)
    backbone = convert_backbone(checkpoint, 'backbone.', report)
    out = {f'backbone.{k}': v for k, v in backbone.items()}
    out.update(convert_heads(state))
    return out


def build_model(config: str) -> torch.nn.Module:
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    cfg.model.backbone.init_cfg = None
    if 'pretrained' in cfg.model:
        cfg.model.pretrained = None
    return MODELS.build(cfg.model)


def check_backbone(state: StateDict, backbone: torch.nn.Module) -> List[str]:
    """Keys the backbone cannot take; an ImageNet checkpoint may lack only the expected
    gaps of the backbone's rules (the dense output norms, the kernels of added focal
    levels, the neighbour-bias tables of stages too small for them at 224), which keep
    their initial values."""
    rules, target = rules_of(backbone), backbone.state_dict()
    _, report = adapt_state_dict(state, target, rules=rules)
    return [f'missing: {k}' for k in report.missing
            if not expected_gap(k, state, target, rules)] + \
        [f'unexpected: {k}' for k in report.unexpected]


def is_classifier(model: torch.nn.Module) -> bool:
    """An image classifier around a trunk with the final norm (mmpretrain's
    ``ImageClassifier`` of configs/classification)."""
    return getattr(model.backbone, 'final_norm', False) and hasattr(model, 'head')


def convert(src: str, dst: str, config: str = None) -> LoadReport:
    report = LoadReport()
    checkpoint = read_checkpoint(src)
    model = build_model(config) if config else None
    if model is not None and is_classifier(model):  # the whole classifier, head included
        state = to_classifier(checkpoint, model.backbone)
        problems = compare_state_dicts(state, model.state_dict())
        if problems:
            raise CheckpointError(
                f'{src} does not fit the classifier of {config} '
                f'({len(problems)} differences):\n  ' + '\n  '.join(problems))
        torch.save({'state_dict': state}, dst)
        return report
    whole = is_whole_model(checkpoint)
    state = convert_whole_model(checkpoint, report) if whole else convert_backbone(
        checkpoint, report=report)
    if model is not None:
        problems = (compare_state_dicts(state, model.state_dict()) if whole else
                    check_backbone(state, model.backbone))
        if problems:
            raise CheckpointError(
                f'{src} does not fit the model of {config} '
                f'({len(problems)} differences):\n  ' + '\n  '.join(problems))
    torch.save({'state_dict': state}, dst)
    return report


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='checkpoint to convert')
    parser.add_argument('dst', help='where to write the converted checkpoint')
    parser.add_argument('--config', help='check the result against this config\'s model')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        report = convert(args.src, args.dst, args.config)
    except CheckpointError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    for line in report.lines():
        print(line)
    print(f'wrote {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
