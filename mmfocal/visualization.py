"""Pictures of what a FocalNet or Focal Transformer backbone does, drawn by
``tools/analysis/visualize_focal.py`` and, while training, by
:class:`~mmfocal.engine.FocalMapsHook`.

FocalNet (the FocalNet paper's Figures 4 and 5): for one block of each chosen stage, the
gates of every focal level, the global gate and the modulator ``h(ctx_all)`` averaged over
channels (mean absolute value), overlaid on the image (one picture each at the image's
size), plus a captioned panel of all of them with one row per stage. The maps are
recomputed by the block's ``FocalModulation.modulate`` from the input of its modulation,
captured by a forward pre-hook while the whole model runs once.

Focal Transformer (the Focal Transformer paper's Figures 8 and 9): the learned position-bias
tables. Per stage, one picture with a row per head: the window's own table
((2w - 1) x (2w - 1)) and the local-to-global table of every pooled level
((w + s_r - 1) x (w + s_r - 1)) of one block; and an overview with one row per stage and
one tile per head of the first pooled level. These are parameters: no image is needed.

Pictures are BGR ``uint8`` arrays (H, W, 3). A backbone class names what is drawn of it in
its ``pictures`` attribute, a key of :data:`DRAWINGS`; the tool and the hook draw through
:func:`drawing_of` and name no backbone.
"""
import math
import re
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F

TILE = 112  # pixels per position-bias tile
CAPTION = 18  # pixels of caption above a panel tile


def check_index(option: str, index: int, length: int, where: str = '') -> None:
    """Python indexing: ``index`` in -length..length - 1."""
    if not -length <= index < length:
        raise ValueError(f'{option} must be in {-length}..{length - 1}{where}, got {index}')


# ------------------------------------------------------------------------------ drawing


def colour(value: np.ndarray, colormap: int) -> np.ndarray:
    """A 2-D array, min-max normalised, as a BGR image of ``colormap``."""
    span = value.max() - value.min()
    norm = (value - value.min()) / span if span > 0 else np.zeros_like(value)
    return cv2.applyColorMap(np.uint8(255 * norm), colormap)


def overlay(image: np.ndarray, value: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """Colour-map ``value`` (H, W) (jet) over the BGR image (H, W, 3)."""
    return cv2.addWeighted(colour(value, cv2.COLORMAP_JET), alpha, image, 1 - alpha, 0)


def caption(tile: np.ndarray, text: str) -> np.ndarray:
    """``tile`` (H, W, 3) with a white bar of ``CAPTION`` pixels holding ``text`` above."""
    bar = np.full((CAPTION, tile.shape[1], 3), 255, np.uint8)
    scale = min(0.45, 0.45 * tile.shape[1] / max(8.5 * len(text), 1))
    cv2.putText(bar, text, (3, CAPTION - 5), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1,
                cv2.LINE_AA)
    return np.vstack([bar, tile])


# ----------------------------------------------------------------------------- FocalNet


def pick_block(backbone, stage: int, block: int):
    """(stage, block) as non-negative indices, and the block."""
    stages = backbone.layers
    check_index('--stage', stage, len(stages))
    blocks = stages[stage].blocks
    check_index('--block', block, len(blocks), f' for stage {stage}')
    return stage % len(stages), block % len(blocks), blocks[block]


def to_image_grid(value: torch.Tensor, padded, valid, image_hw) -> np.ndarray:
    """A token map (h, w) of a padded model input (``padded`` = (H_pad, W_pad)), whose
    resized image covers ``valid`` = (H_valid, W_valid) of it -> (H, W) = ``image_hw``."""
    grid = F.interpolate(value[None, None].float(), size=tuple(padded), mode='bilinear',
                         align_corners=False)[0, 0, :valid[0], :valid[1]]
    return cv2.resize(grid.cpu().numpy(), (image_hw[1], image_hw[0]),
                      interpolation=cv2.INTER_LINEAR)


def capture_focalnet(backbone, run: Callable, image_hw, stages: Sequence[int], block: int):
    """Maps of one block per stage from one run of the whole model.

    Args:
        backbone: the model's FocalNet.
        run: runs the model once on the image; returns its data sample, whose
            ``img_shape`` is the resized image inside the padded input.
        image_hw: (H, W) of the original image.

    Returns:
        a list with, per stage, ('s{stage}b{block}', {name: (H, W) float array over the
        image}) for the names gate_level1..L, gate_global and modulator.
    """
    blocks = [pick_block(backbone, stage, block) for stage in stages]
    captured = {}
    hooks = [backbone.register_forward_pre_hook(
        lambda m, args: captured.__setitem__('input', args[0]))]
    for stage, index, module in blocks:
        hooks.append(module.modulation.register_forward_pre_hook(
            lambda m, args, key=(stage, index): captured.__setitem__(key, args[0])))
    try:
        sample = run()
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
            name: to_image_grid(value, padded, valid, image_hw)
            for name, value in maps.items()}))
    return out


def focalnet_pictures(image: np.ndarray, captured) -> Dict[str, np.ndarray]:
    """{'{where}_{map}': overlay (H, W, 3)} for every captured map, and 'focalnet': the
    panel, one row per stage: the image, then every map, captioned."""
    pictures, rows = {}, []
    for where, maps in captured:
        tiles = [caption(image, f'stage {where[1:].replace("b", " block ")}')]
        for name, value in maps.items():
            pictures[f'{where}_{name}'] = overlay(image, value)
            tiles.append(caption(pictures[f'{where}_{name}'], name.replace('_', ' ')))
        rows.append(np.hstack(tiles))
    pictures['focalnet'] = np.vstack(rows)
    return pictures


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
    """(side, side) -> (TILE + 8, TILE + 8, 3) BGR, viridis, nearest scaling, white border."""
    tile = cv2.resize(colour(table, cv2.COLORMAP_VIRIDIS), (TILE, TILE),
                      interpolation=cv2.INTER_NEAREST)
    return cv2.copyMakeBorder(tile, 4, 4, 4, 4, cv2.BORDER_CONSTANT, value=(255, 255, 255))


def focal_transformer_pictures(backbone, stages: Optional[List[int]] = None,
                               block: int = -1) -> Dict[str, np.ndarray]:
    """{'focal_transformer_stage{i}': heads x tables, 'focal_transformer_heads': stages x
    heads} for ``stages`` (default all) and one ``block`` of each."""
    tables = bias_tables(backbone)
    present = sorted({stage for stage, _ in tables})
    stages = list(range(len(present))) if stages is None else stages
    for stage in stages:
        check_index('--stage', stage, len(present))
    pictures, overview = {}, []
    for stage in [present[s] for s in stages]:
        blocks = sorted(b for s, b in tables if s == stage)
        check_index('--block', block, len(blocks), f' for stage {stage}')
        chosen = tables[(stage, blocks[block])]
        names = ['window'] + sorted(k for k in chosen if k != 'window')
        rows = [np.hstack([
            caption(bias_tile(chosen[n][head]),
                    f'head {head} {n} {chosen[n].shape[1]}x{chosen[n].shape[2]}')
            for n in names]) for head in range(chosen['window'].shape[0])]
        pictures[f'focal_transformer_stage{stage}'] = np.vstack(rows)
        pooled = names[1] if len(names) > 1 else 'window'
        overview.append([caption(bias_tile(t), f'stage {stage} head {h}')
                         for h, t in enumerate(chosen[pooled])])
    width = max(len(row) for row in overview)
    blank = np.full_like(overview[0][0], 255)
    pictures['focal_transformer_heads'] = np.vstack(
        [np.hstack(row + [blank] * (width - len(row))) for row in overview])
    return pictures


# ----------------------------------------------------------------------- what is drawn


@dataclass(frozen=True)
class Drawing:
    """The pictures of one kind of backbone.

    Attributes:
        needs_image (bool): the pictures show a run of the model on an image (else its
            parameters, and no image is taken).
        draw: ``draw(backbone, run, image, stages, block)`` -> {name: picture}; ``run``
            runs the whole model once on ``image`` and returns its data sample; ``stages``
            None is the drawing's default.
        logged (tuple): (name, picture) pairs that the training hook logs; empty: all.
        what (str): what the pictures show, for messages.
    """
    needs_image: bool
    draw: Callable
    logged: Tuple[Tuple[str, str], ...]
    what: str


def _draw_modulation(backbone, run, image, stages, block):
    captured = capture_focalnet(backbone, run, image.shape[:2], stages or [-1], block)
    return focalnet_pictures(image, captured)


def _draw_bias_tables(backbone, run, image, stages, block):
    return focal_transformer_pictures(backbone, stages, block)


#: what a backbone class's ``pictures`` attribute may name
DRAWINGS = {
    'gates_and_modulator': Drawing(
        needs_image=True, draw=_draw_modulation, logged=(('focalnet_maps', 'focalnet'), ),
        what="the gates and the modulator of one block per stage over an image"),
    'position_bias_tables': Drawing(
        needs_image=False, draw=_draw_bias_tables, logged=(),
        what='its position-bias tables, which do not depend on an image'),
}


def drawing_of(backbone) -> Drawing:
    """The :class:`Drawing` that ``backbone``'s class names in ``pictures``."""
    kind = getattr(type(backbone), 'pictures', None)
    if kind not in DRAWINGS:
        from .registry import registered_backbones
        drawn = sorted(cls.__name__ for cls in registered_backbones()
                       if getattr(cls, 'pictures', None) in DRAWINGS)
        raise ValueError(f'{type(backbone).__name__} has no pictures (a class attribute '
                         f'`pictures` naming one of {sorted(DRAWINGS)}); the backbones '
                         f'drawn: {drawn}')
    return DRAWINGS[kind]
