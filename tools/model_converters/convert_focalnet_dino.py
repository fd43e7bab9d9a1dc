"""Convert a FocalNet-DINO checkpoint (DINO codebase) to an mmdet 3 DINO checkpoint.

Reads the ``{'model': ...}`` checkpoints of FocalNet/FocalNet-DINO (e.g.
``focalnet_large_fl4_o365_finetuned_on_coco.pth``; optimizer state and the training
command line ``args`` beside it are ignored) with ``torch.load(weights_only=True)`` and
writes ``{'state_dict': ...}`` for ``tools/test.py CONFIG DST``. The key map is
``mmfocal.models.dino_checkpoint.KEY_MAP`` (listed in docs/en/systems.md); a key it does
not cover is an error. COCO class rows (indexed by category id, 91) become mmdet's 80
labels; ``--class-rows all`` keeps them (Objects365: 366 rows, a config with
``num_classes=366``). With ``--config`` every key and shape is checked against the
config's model.

Usage::

    python tools/model_converters/convert_focalnet_dino.py \\
        focalnet_large_fl4_o365_finetuned_on_coco.pth dino_focalnet_l_fl4_coco.pth \\
        --config configs/detection/dino_5scale_focalnet_l_fl4_1x.py
"""
import argparse
import sys

import torch

from mmfocal.models.checkpoint import CheckpointError
from mmfocal.models.dino_checkpoint import CLASS_ROWS_CHOICES, convert_dino_file


def build_model(config: str) -> torch.nn.Module:
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    cfg.model.backbone.init_cfg = None
    return MODELS.build(cfg.model)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='DINO-codebase checkpoint to convert')
    parser.add_argument('dst', help='where to write the mmdet checkpoint')
    parser.add_argument('--config', help='check the result against this config\'s model')
    parser.add_argument('--class-rows', choices=CLASS_ROWS_CHOICES, default='coco',
                        help='coco: select the 80 COCO category ids (default); all: keep')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    target = build_model(args.config).state_dict() if args.config else None
    try:
        state = convert_dino_file(args.src, args.class_rows, target,
                                  model_name=f'the model of {args.config}')
    except CheckpointError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    torch.save({'state_dict': state}, args.dst)
    print(f'wrote {len(state)} tensors to {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
