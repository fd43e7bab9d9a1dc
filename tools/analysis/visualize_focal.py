"""Pictures of what a trained FocalNet or Focal Transformer backbone does.

FocalNet (the FocalNet paper's Figures 4 and 5): the image goes through the config's test
pipeline and the whole model; for one block of each chosen stage (default: the last block
of the last stage) the gates of every focal level, the global gate and the modulator
``h(ctx_all)`` averaged over channels (mean absolute value) are overlaid on the image, one
PNG each at the image's size (``{stem}_s{stage}b{block}_{map}.png``), plus a captioned
panel of all of them with one row per stage (``{stem}_focalnet.png``).

Focal Transformer (the Focal Transformer paper's Figures 8 and 9): the learned position-bias
tables. For every stage, ``focal_transformer_stage{i}.png`` shows, per head (rows), the
window's own table ((2w - 1) x (2w - 1)) and the local-to-global table of every pooled
level ((w + s_r - 1) x (w + s_r - 1)) of one block (default: the last). The overview
``focal_transformer_heads.png`` has one row per stage and one tile per head of the first
pooled level. These are parameters, so no image is needed.

    python tools/analysis/visualize_focal.py CONFIG CHECKPOINT [IMAGE ...] --out-dir DIR

The backbone modules are not changed: the FocalNet maps are recomputed by the block's
``FocalModulation.modulate`` from the input of its modulation, captured by a forward hook.
"""
import argparse
import math
import os
import os.path as osp
import re
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmfocal.models.checkpoint import allow_mmengine_checkpoints
from mmfocal.registry import toolbox_of

TILE = 112  # pixels per position-bias tile
CAPTION = 18  # pixels of caption above a panel tile


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
    allow_mmengine_checkpoints()
    cfg.model.backbone.init_cfg = None  # the checkpoint holds the trained backbone
    if scope == 'mmdet':
        from mmdet.apis import init_detector
        model = init_detector(cfg, checkpoint, device=device)
    else:
        from mmseg.apis import init_model
        model = init_model(cfg, checkpoint, device=device)
    kind = type(model.backbone).__name__
    if kind not in ('FocalNet', 'FocalTransformer'):
        raise ValueError(f'{config}: the backbone is {kind}; this tool draws FocalNet and '
                         'FocalTransformer backbones')
    return model, scope


def run_model(model, scope: str, image: np.ndarray):
    """Run the whole model on a BGR image; returns its data sample."""
    if scope == 'mmdet':
        from mmdet.apis import inference_detector
        return inference_detector(model, image)
    from mmseg.apis import inference_model
    return inference_model(model, image)


# ----------------------------------------------------------------------------- FocalNet


def check_index(option: str, index: int, length: int, where: str = '') -> None:
    """Python indexing: ``index`` in -length..length - 1."""
    if not -length <= index < length:
        raise ValueError(f'{option} must be in {-length}..{length - 1}{where}, got {index}')


def pick_block(backbone, stage: int, block: int):
    stages = backbone.layers
    check_index('--stage', stage, len(stages))
    blocks = stages[stage].blocks
    check_index('--block', block, len(blocks), f' for stage {stage}')
    return stage % len(stages), block % len(blocks), blocks[block]


def capture_focalnet(model, scope: str, image: np.ndarray, stages: List[int], block: int):
    """Maps of one block per stage for ``image``, from one run of the model.

    Returns a list with, per stage, ('s{stage}b{block}', {name: (H, W) float array over
    the image}) for the names gate_level1..L, gate_global and modulator.
    """
    blocks = [pick_block(model.backbone, stage, block) for stage in stages]
    captured = {}
    hooks = [model.backbone.register_forward_pre_hook(
        lambda m, args: captured.__setitem__('input', args[0]))]
    for stage, index, module in blocks:
        hooks.append(module.modulation.register_forward_pre_hook(
            lambda m, args, key=(stage, index): captured.__setitem__(key, args[0])))
    try:
        sample = run_model(model, scope, image)
    finally:
        for hook in hooks:
            hook.remove()
    padded = captured['input'].shape[-2:]
    valid = sample.metainfo['img_shape'][:2]
    out = []
    for stage, index, module in blocks:
        with torch.no_grad():
            _, gates, modulator = module.modulation.modulate(captured[(stage, index)][:1])
        maps = {f'gate_level{k + 1}': gates[0, k] for k in range(gates.shape[1] - 1)}
        maps['gate_global'] = gates[0, -1]
        maps['modulator'] = modulator[0].abs().mean(-1)
        out.append((f's{stage}b{index}', {
            name: to_image_grid(value, padded, valid, image.shape[:2])
            for name, value in maps.items()}))
    return out


def to_image_grid(value: torch.Tensor, padded, valid, image_hw) -> np.ndarray:
    """A token map (h, w) of a padded model input -> (H, W) over the original image."""
    grid = F.interpolate(value[None, None].float(), size=tuple(padded), mode='bilinear',
                         align_corners=False)[0, 0, :valid[0], :valid[1]]
    return cv2.resize(grid.cpu().numpy(), (image_hw[1], image_hw[0]),
                      interpolation=cv2.INTER_LINEAR)


def colour(value: np.ndarray, colormap: int) -> np.ndarray:
    """A 2-D array, min-max normalised, as a BGR image of ``colormap``."""
    span = value.max() - value.min()
    norm = (value - value.min()) / span if span > 0 else np.zeros_like(value)
    return cv2.applyColorMap(np.uint8(255 * norm), colormap)


def overlay(image: np.ndarray, value: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """Colour-map ``value`` (jet) over the BGR image."""
    return cv2.addWeighted(colour(value, cv2.COLORMAP_JET), alpha, image, 1 - alpha, 0)


def caption(tile: np.ndarray, text: str) -> np.ndarray:
    bar = np.full((CAPTION, tile.shape[1], 3), 255, np.uint8)
    scale = min(0.45, 0.45 * tile.shape[1] / max(8.5 * len(text), 1))
    cv2.putText(bar, text, (3, CAPTION - 5), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1,
                cv2.LINE_AA)
    return np.vstack([bar, tile])


def draw_focalnet(model, scope: str, images: List[str], out_dir: str, stages: List[int],
                  block: int) -> List[str]:
    """One PNG per map and stage, and per image a panel with one row per stage."""
    written = []
    for path in images:
        image = cv2.imread(path)
        if image is None:
            raise FileNotFoundError(f'cannot read image {path}')
        stem = osp.splitext(osp.basename(path))[0]
        rows = []
        for where, maps in capture_focalnet(model, scope, image, stages, block):
            tiles = [caption(image, f'stage {where[1:].replace("b", " block ")}')]
            for name, value in maps.items():
                picture = overlay(image, value)
                written.append(osp.join(out_dir, f'{stem}_{where}_{name}.png'))
                cv2.imwrite(written[-1], picture)
                tiles.append(caption(picture, name.replace('_', ' ')))
            rows.append(np.hstack(tiles))
        written.append(osp.join(out_dir, f'{stem}_focalnet.png'))
        cv2.imwrite(written[-1], np.vstack(rows))
    return written


# ----------------------------------------------------------------- Focal Transformer

TABLE_KEY = re.compile(r'layers\.(\d+)\.blocks\.(\d+)\.attn\.relative_position_bias_table'
                       r'(_to_windows\.(\d+))?$')


def bias_tables(backbone) -> Dict[Tuple[int, int], Dict[str, np.ndarray]]:
    """{(stage, block): {'window' | 'level{k}': (nH, side, side)}} from the parameters."""
    tables = {}
    for name, param in backbone.named_parameters():
        match = TABLE_KEY.match(name)
        if not match:
            continue
        value = param.detach().float().cpu()
        if match.group(3) is None:  # Swin-style ((2w - 1)^2, nH)
            key, value = 'window', value.t()
        else:  # (nH, (w + s_r - 1)^2)
            key = f'level{int(match.group(4)) + 1}'
        side = math.isqrt(value.shape[1])
        tables.setdefault((int(match.group(1)), int(match.group(2))), {})[key] = \
            value.reshape(-1, side, side).numpy()
    if not tables:
        raise ValueError('the backbone has no relative_position_bias_table parameters')
    return tables


def bias_tile(table: np.ndarray) -> np.ndarray:
    """(side, side) -> (TILE, TILE, 3) BGR, viridis, nearest scaling."""
    return cv2.resize(colour(table, cv2.COLORMAP_VIRIDIS), (TILE, TILE),
                      interpolation=cv2.INTER_NEAREST)


def pad_tile(tile: np.ndarray, width: int = 4) -> np.ndarray:
    return cv2.copyMakeBorder(tile, width, width, width, width, cv2.BORDER_CONSTANT,
                              value=(255, 255, 255))


def draw_focal_transformer(backbone, out_dir: str, stages: Optional[List[int]],
                           block: int) -> List[str]:
    """One PNG per stage (heads x tables) and the overview (stages x heads)."""
    tables = bias_tables(backbone)
    present = sorted({stage for stage, _ in tables})
    stages = list(range(len(present))) if stages is None else stages
    for stage in stages:
        check_index('--stage', stage, len(present))
    written, overview = [], []
    for stage in [present[s] for s in stages]:
        blocks = sorted(b for s, b in tables if s == stage)
        check_index('--block', block, len(blocks), f' for stage {stage}')
        chosen = tables[(stage, blocks[block])]
        names = ['window'] + sorted(k for k in chosen if k != 'window')
        rows = []
        for head in range(chosen['window'].shape[0]):
            row = [caption(pad_tile(bias_tile(chosen[n][head])),
                           f'head {head} {n} {chosen[n].shape[1]}x{chosen[n].shape[2]}')
                   for n in names]
            rows.append(np.hstack(row))
        written.append(osp.join(out_dir, f'focal_transformer_stage{stage}.png'))
        cv2.imwrite(written[-1], np.vstack(rows))
        pooled = names[1] if len(names) > 1 else 'window'
        overview.append([caption(pad_tile(bias_tile(t)), f'stage {stage} head {h}')
                         for h, t in enumerate(chosen[pooled])])
    width = max(len(row) for row in overview)
    blank = np.full_like(overview[0][0], 255)
    written.append(osp.join(out_dir, 'focal_transformer_heads.png'))
    cv2.imwrite(written[-1], np.vstack([np.hstack(row + [blank] * (width - len(row)))
                                        for row in overview]))
    return written


def main(argv=None) -> List[str]:
    args = parse_args(argv)
    model, scope = build_model(args.config, args.checkpoint, args.device)
    os.makedirs(args.out_dir, exist_ok=True)
    if type(model.backbone).__name__ == 'FocalNet':
        if not args.images:
            raise ValueError('FocalNet maps need at least one image')
        written = draw_focalnet(model, scope, args.images, args.out_dir,
                                args.stage or [-1], args.block)
    else:
        if args.images:
            raise ValueError('Focal Transformer pictures show its position-bias tables, '
                             'which do not depend on an image: give no image')
        written = draw_focal_transformer(model.backbone, args.out_dir, args.stage,
                                         args.block)
    for path in written:
        print(f'visualize_focal: wrote {path}')
    return written


if __name__ == '__main__':
    main()
