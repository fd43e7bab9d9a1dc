"""Pictures of what a trained FocalNet or Focal Transformer backbone does (the drawing is
:mod:`mmfocal.visualization`, shared with the training hook ``FocalMapsHook``).

FocalNet (the FocalNet paper's Figures 4 and 5): the image goes through the config's test
pipeline and the whole model (a detector, a segmentor or an image classifier); for one block
of each chosen stage (default: the last block of the last stage) the gates of every focal
level, the global gate and the modulator are overlaid on the image, one PNG each at the
image's size (``{stem}_s{stage}b{block}_{map}.png``), plus a captioned panel of all of them
with one row per stage (``{stem}_focalnet.png``). With several images, their panels also
go into one picture, one row each (``focalnet_gallery.png``). ``--style tutorial`` draws as
the Keras tutorial's TrainMonitor (the modulator's L2 norm, inferno); ``--display-size``
enlarges small images (CIFAR's, the digits') for drawing.

Focal Transformer (the Focal Transformer paper's Figures 8 and 9): the learned position-bias
tables, ``focal_transformer_stage{i}.png`` per stage (heads x tables of one block) and the
overview ``focal_transformer_heads.png`` (stages x heads). No image is needed.

    python tools/analysis/visualize_focal.py CONFIG CHECKPOINT [IMAGE ...] --out-dir DIR
    python tools/analysis/visualize_focal.py configs/classification/demo_focalnet_digits.py \
        CHECKPOINT IMAGE ... --out-dir DIR --stage 1 --style tutorial --display-size 96
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
from mmfocal.visualization import STYLES, display_image, drawing_of, gallery


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Draw FocalNet gates and modulators, or '
                                     'Focal Transformer position-bias tables.')
    parser.add_argument('config', help='mmdet, mmseg or mmpretrain config with a FocalNet '
                        'or FocalTransformer backbone')
    parser.add_argument('checkpoint', help='checkpoint written by tools/train.py '
                        '(or "none" for the initial weights)')
    parser.add_argument('images', nargs='*', help='images (needed for FocalNet)')
    parser.add_argument('--out-dir', required=True, help='where the PNGs go')
    parser.add_argument('--stage', type=int, nargs='+',
                        help='stages to draw (FocalNet: one panel row each, default the '
                        'last; Focal Transformer: default all)')
    parser.add_argument('--block', type=int, default=-1,
                        help='block within the stage (default last)')
    parser.add_argument('--style', choices=sorted(STYLES), default='paper',
                        help="FocalNet: 'paper' (mean |modulator|, jet) or 'tutorial' (the "
                        "Keras tutorial's L2 norm of the modulator, inferno)")
    parser.add_argument('--display-size', type=int, metavar='PIXELS',
                        help='draw images whose shorter side is smaller enlarged to at least '
                        'PIXELS (nearest pixels); the model still sees the image itself')
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args(argv)
    if args.display_size is not None and args.display_size < 1:
        parser.error(f'--display-size must be a positive number of pixels, got '
                     f'{args.display_size}')
    return args


def build_model(config: str, checkpoint: str, device: str):
    """The detector, segmentor or classifier of ``config`` with ``checkpoint`` loaded, in
    eval mode, and its toolbox."""
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
    elif scope == 'mmseg':
        from mmseg.apis import init_model
        model = init_model(cfg, checkpoint, device=device)
    else:
        from mmpretrain.apis import get_model
        model = get_model(cfg, pretrained=checkpoint or False, device=device)
        model.cfg = cfg  # what run_model reads the test pipeline from, as mmdet's and mmseg's
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
    if scope == 'mmseg':
        from mmseg.apis import inference_model
        return inference_model(model, image)
    # mmpretrain's inferencer returns dicts: the classifier's test pipeline (image given, not
    # loaded) and test_step give its data sample
    from mmengine.dataset import Compose, pseudo_collate
    from mmpretrain.datasets import remove_transform
    from mmpretrain.registry import TRANSFORMS
    steps = remove_transform(model.cfg.test_dataloader.dataset.pipeline, 'LoadImageFromFile')
    data = Compose([TRANSFORMS.build(step) for step in steps])(
        dict(img=image, img_shape=image.shape[:2], ori_shape=image.shape[:2]))
    return model.test_step(pseudo_collate([data]))[0]


def draw(model, scope: str, images: List[str], out_dir: str, stages: Optional[List[int]],
         block: int, style: str = 'paper', display_size: Optional[int] = None) -> List[str]:
    """The backbone's pictures as PNGs: of a drawing over images, one per picture and
    image (``IMAGE_NAME.png``) and, for several images, the gallery of their panels
    (``{panel}_gallery.png``); of one without, one per picture (``NAME.png``)."""
    drawing = drawing_of(model.backbone)
    if drawing.needs_image and not images:
        raise ValueError(f'the pictures of {type(model.backbone).__name__} show '
                         f'{drawing.what}: they need at least one image')
    if not drawing.needs_image and images:
        raise ValueError(f'the pictures of {type(model.backbone).__name__} show '
                         f'{drawing.what}: give no image')
    written, panels = [], []
    for path in images if drawing.needs_image else [None]:
        image, shown, prefix = None, None, ''
        if path is not None:
            image = cv2.imread(path)
            if image is None:
                raise FileNotFoundError(f'cannot read image {path}')
            shown = display_image(image, display_size)
            prefix = osp.splitext(osp.basename(path))[0] + '_'
        pictures = drawing.draw(model.backbone, lambda: run_model(model, scope, image), shown,
                                stages, block, style)
        for name, picture in pictures.items():
            written.append(osp.join(out_dir, f'{prefix}{name}.png'))
            cv2.imwrite(written[-1], picture)
        panels.append([pictures[picture] for _, picture in drawing.logged])
    if len(panels) > 1:
        for k, (_, picture) in enumerate(drawing.logged):
            written.append(osp.join(out_dir, f'{picture}_gallery.png'))
            cv2.imwrite(written[-1], gallery([row[k] for row in panels]))
    return written


def main(argv=None) -> List[str]:
    args = parse_args(argv)
    model, scope = build_model(args.config, args.checkpoint, args.device)
    os.makedirs(args.out_dir, exist_ok=True)
    written = draw(model, scope, args.images, args.out_dir, args.stage, args.block, args.style,
                   args.display_size)
    for path in written:
        print(f'visualize_focal: wrote {path}')
    return written


if __name__ == '__main__':
    main()
