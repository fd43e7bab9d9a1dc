"""Pictures of what a FocalNet or Focal Transformer backbone does, drawn by
``tools/analysis/visualize_focal.py`` and, while training, by
:class:`~mmfocal.engine.FocalMapsHook`.

FocalNet (the FocalNet paper's Figures 4 and 5): for one block of each chosen stage, the
gates of every focal level, the global gate and the modulator ``h(ctx_all)`` averaged over
channels (mean absolute value), overlaid on the image (one picture each at the image's
size), plus a captioned panel of all of them with one row per stage. The maps are
recomputed by the block's ``FocalModulation.modulate`` from the input of its modulation,
captured by a forward pre-hook while the whole model runs once. Two styles
(:data:`STYLES`): the paper's (above, jet) and the Keras tutorial's (its TrainMonitor: the
L2 norm of the modulator over channels, inferno at alpha 0.6); several images' panels stack
into one picture, one row each (:func:`gallery`).

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


def overlay(image: np.ndarray, value: np.ndarray, alpha: float = 0.55,
            colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """Colour-map ``value`` (H, W) over the BGR image (H, W, 3)."""
    return cv2.addWeighted(colour(value, colormap), alpha, image, 1 - alpha, 0)


def caption(tile: np.ndarray, text: str) -> np.ndarray:
    """``tile`` (H, W, 3) with a white bar of ``CAPTION`` pixels holding ``text`` above."""
    bar = np.full((CAPTION, tile.shape[1], 3), 255, np.uint8)
    scale = min(0.45, 0.45 * tile.shape[1] / max(8.5 * len(text), 1))
    cv2.putText(bar, text, (3, CAPTION - 5), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1,
                cv2.LINE_AA)
    return np.vstack([bar, tile])


def display_image(image: np.ndarray, size: Optional[int]) -> np.ndarray:
    """``image`` (H, W, 3) enlarged by the smallest integer factor (nearest pixels) that
    makes its shorter side at least ``size``; as it is when ``size`` is None or smaller.
    The maps are drawn at the size of the image they are given, so small images (CIFAR's
    32x32) can be drawn larger than the model sees them."""
    if not size or min(image.shape[:2]) >= size:
        return image
    factor = math.ceil(size / min(image.shape[:2]))
    return cv2.resize(image, (image.shape[1] * factor, image.shape[0] * factor),
                      interpolation=cv2.INTER_NEAREST)


def gallery(panels: Sequence[np.ndarray]) -> np.ndarray:
    """Panels (H_i, W_i, 3) stacked top to bottom, narrower ones padded white on the right."""
    if not len(panels):
        raise ValueError('gallery: no panel to stack')
    width = max(p.shape[1] for p in panels)
    return np.vstack([cv2.copyMakeBorder(p, 0, 0, 0, width - p.shape[1], cv2.BORDER_CONSTANT,
                                         value=(255, 255, 255)) for p in panels])


# ----------------------------------------------------------------------------- FocalNet


@dataclass(frozen=True)
class Style:
    """How FocalNet's maps are reduced and coloured.

    Attributes:
        modulator: the map of the modulator (B, H, W, C) -> (B, H, W): ``'mean_abs'`` (mean
            absolute value over channels, named ``modulator``) or ``'l2'`` (L2 norm over
            channels, named ``modulator_norm``).
        colormap: OpenCV colour map of the overlays.
        alpha: opacity of the overlays.
    """
    modulator: str
    colormap: int
    alpha: float

    @property
    def modulator_name(self) -> str:
        return 'modulator' if self.modulator == 'mean_abs' else 'modulator_norm'

    def reduce_modulator(self, modulator: torch.Tensor) -> torch.Tensor:
        if self.modulator == 'mean_abs':
            return modulator.abs().mean(-1)
        return modulator.float().norm(dim=-1)


#: 'paper': the FocalNet paper's Figures 4 and 5; 'tutorial': the Keras tutorial's
#: TrainMonitor (gates G1..GL, the global gate and the modulator's L2 norm, inferno, 0.6)
STYLES = {
    'paper': Style(modulator='mean_abs', colormap=cv2.COLORMAP_JET, alpha=0.55),
    'tutorial': Style(modulator='l2', colormap=cv2.COLORMAP_INFERNO, alpha=0.6),
}


def style_of(name: str) -> Style:
    """The :class:`Style` named ``name``; raises naming the styles there are."""
    if name not in STYLES:
        raise ValueError(f'style must be one of {sorted(STYLES)}, got {name!r}')
    return STYLES[name]


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


def capture_focalnet(backbone, run: Callable, image_hw, stages: Sequence[int], block: int,
                     style: str = 'paper'):
    """Maps of one block per stage from one run of the whole model.

    Args:
        backbone: the model's FocalNet (of any number of stages).
        run: runs the model once on the image; returns its data sample, whose
            ``img_shape`` (where it has one) is the resized image inside the padded input.
        image_hw: (H, W) of the image drawn.
        style: a key of :data:`STYLES` (how the modulator is reduced).

    Returns:
        a list with, per stage, ('s{stage}b{block}', {name: (H, W) float array over the
        image}) for the names gate_level1..L, gate_global and modulator (style 'paper') or
        modulator_norm (style 'tutorial').
    """
    style = style_of(style)
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
    # without an img_shape, the input is the whole resized image
    valid = sample.metainfo.get('img_shape', padded)[:2]
    out = []
    for stage, index, module in blocks:
        with torch.no_grad():
            _, gates, modulator = module.modulation.modulate(captured[(stage, index)][:1])
        maps = {f'gate_level{k + 1}': gates[0, k] for k in range(gates.shape[1] - 1)}
        maps['gate_global'] = gates[0, -1]
        maps[style.modulator_name] = style.reduce_modulator(modulator[:1])[0]
        out.append((f's{stage}b{index}', {
            name: to_image_grid(value, padded, valid, image_hw)
            for name, value in maps.items()}))
    return out


def focalnet_pictures(image: np.ndarray, captured,
                      style: str = 'paper') -> Dict[str, np.ndarray]:
    """{'{where}_{map}': overlay (H, W, 3)} for every captured map, and 'focalnet': the
    panel, one row per stage: the image, then every map, captioned."""
    style = style_of(style)
    pictures, rows = {}, []
    for where, maps in captured:
        tiles = [caption(image, f'stage {where[1:].replace("b", " block ")}')]
        for name, value in maps.items():
            pictures[f'{where}_{name}'] = overlay(image, value, style.alpha, style.colormap)
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
        draw: ``draw(backbone, run, image, stages, block, style='paper')`` -> {name:
            picture}; ``run`` runs the whole model once on its input and returns its data
            sample; ``image`` (H, W, 3) BGR is what the maps are drawn over (the model's
            input, possibly enlarged); ``stages`` None is the drawing's default; ``style``
            is a key of :data:`STYLES`.
        logged (tuple): (name, picture) pairs that the training hook logs; empty: all.
        what (str): what the pictures show, for messages.
    """
    needs_image: bool
    draw: Callable
    logged: Tuple[Tuple[str, str], ...]
    what: str


def _draw_modulation(backbone, run, image, stages, block, style='paper'):
    captured = capture_focalnet(backbone, run, image.shape[:2], stages or [-1], block, style)
    return focalnet_pictures(image, captured, style)


def _draw_bias_tables(backbone, run, image, stages, block, style='paper'):
    if style != 'paper':
        raise ValueError(f'style {style!r} draws FocalNet gates; the position-bias tables of '
                         f"{type(backbone).__name__} have only the style 'paper'")
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
