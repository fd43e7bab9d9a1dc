"""Pictures of what a trained FocalNet or Focal Transformer backbone does (the drawing is
:mod:`mmfocal.visualization`, shared with the training hook ``FocalMapsHook``).

FocalNet (the FocalNet paper's Figures 4 and 5): the image goes through the config's test
pipeline and the whole model; for one block of each chosen stage (default: the last block
of the last stage) the gates of every focal level, the global gate and the modulator are
overlaid on the image, one PNG each at the image's size (``{stem}_s{stage}b{block}_{map}.png``),
plus a captioned panel of all of them with one row per stage (``{stem}_focalnet.png``).

Focal Transformer (the Focal Transformer paper's Figures 8 and 9): the learned position-bias
tables, ``focal_transformer_stage{i}.png`` per stage (heads x tables of one block) and the
overview ``focal_transformer_heads.png`` (stages x heads). No image is needed.

    python tools/analysis/visualize_focal.py CONFIG CHECKPOINT [IMAGE ...] --out-dir DIR
"""
import argparse
import os
import os.path as osp
from typing import List, Optional

import cv2
import numpy as np
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmfocal.registry import toolbox_of
from mmfocal.visualization import drawing_of


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Draw FocalNet gates and modulators, or '
                                     'Focal Transformer position-bias tables.')
    parser.add_argument('config', help='mmdet or mmseg config with a FocalNet or '
                        'FocalTransformer backbone')
    parser.add_argument('checkpoint', help='checkpoint written by tools/train.py '
                        '(or "none" for the initial weights)')
    parser.add_argument('images', nargs='*', help='images (needed for FocalNet)')
    parser.add_argument('--out-dir', required=True, help='where the PNGs go')
    parser.add_argument('--stage', type=int, nargs='+',
                        help='stages to draw (FocalNet: one panel row each, default the '
                        'last; Focal Transformer: default all)')
    parser.add_argument('--block', type=int, default=-1,
                        help='block within the stage (default last)')
    parser.add_argument('--device', default='cpu')
    return parser.parse_args(argv)


def build_model(config: str, checkpoint: str, device: str):
    """The detector or segmentor of ``config`` with ``checkpoint`` loaded, in eval mode."""
    cfg = Config.fromfile(config)
    scope = toolbox_of(cfg)
    if checkpoint != 'none' and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {checkpoint}')
    checkpoint = None if checkpoint == 'none' else checkpoint
    init_default_scope(scope)
    cfg.model.backbone.init_cfg = None  # the checkpoint holds the trained backbone
    if scope == 'mmdet':
        from mmdet.apis import init_detector
        model = init_detector(cfg, checkpoint, device=device)
    else:
        from mmseg.apis import init_model
        model = init_model(cfg, checkpoint, device=device)
    try:
        drawing_of(model.backbone)
    except ValueError as exc:
        raise ValueError(f'{config}: {exc}') from None
    return model, scope


def run_model(model, scope: str, image: np.ndarray):
    """Run the whole model on a BGR image; returns its data sample."""
    if scope == 'mmdet':
        from mmdet.apis import inference_detector
        return inference_detector(model, image)
    from mmseg.apis import inference_model
    return inference_model(model, image)


def draw(model, scope: str, images: List[str], out_dir: str, stages: Optional[List[int]],
         block: int) -> List[str]:
    """The backbone's pictures as PNGs: of a drawing over images, one per picture and
    image (``IMAGE_NAME.png``); of one without, one per picture (``NAME.png``)."""
    drawing = drawing_of(model.backbone)
    if drawing.needs_image and not images:
        raise ValueError(f'the pictures of {type(model.backbone).__name__} show '
                         f'{drawing.what}: they need at least one image')
    if not drawing.needs_image and images:
        raise ValueError(f'the pictures of {type(model.backbone).__name__} show '
                         f'{drawing.what}: give no image')
    written = []
    for path in images if drawing.needs_image else [None]:
        image, prefix = None, ''
        if path is not None:
            image = cv2.imread(path)
            if image is None:
                raise FileNotFoundError(f'cannot read image {path}')
            prefix = osp.splitext(osp.basename(path))[0] + '_'
        pictures = drawing.draw(model.backbone, lambda: run_model(model, scope, image), image,
                                stages, block)
        for name, picture in pictures.items():
            written.append(osp.join(out_dir, f'{prefix}{name}.png'))
            cv2.imwrite(written[-1], picture)
    return written


def main(argv=None) -> List[str]:
    args = parse_args(argv)
    model, scope = build_model(args.config, args.checkpoint, args.device)
    os.makedirs(args.out_dir, exist_ok=True)
    written = draw(model, scope, args.images, args.out_dir, args.stage, args.block)
    for path in written:
        print(f'visualize_focal: wrote {path}')
    return written


if __name__ == '__main__':
    main()
