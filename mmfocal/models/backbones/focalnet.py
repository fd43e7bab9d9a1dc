"""FocalNet: focal modulation networks (Yang et al., ECCV 2022) for dense prediction.

Tokens stay in one memory layout from the stem to the outputs: (B, H, W, C) contiguous,
which is what LayerNorm and the linear layers read. Where a convolution needs (B, C, H, W)
it gets a ``permute`` view of the same memory (channels-last strides), and returns its
result in that layout, so no tensor is copied for a layout change.
"""
from typing import List, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.drop import DropPath
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_

from ...registry import register_backbone
from ..checkpoint import load_pretrained

NUM_STAGES = 4


def as_stage_list(value: Union[int, Sequence[int]], name: str) -> List[int]:
    """An int for every stage, or one value per stage."""
    values = [value] * NUM_STAGES if isinstance(value, int) else list(value)
    if len(values) != NUM_STAGES or not all(isinstance(v, int) and v > 0 for v in values):
        raise ValueError(f'{name} must be a positive int or {NUM_STAGES} positive ints '
                         f'(one per stage), got {value!r}')
    return values


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad (B, C, H, W) on the right/bottom so that H and W are multiples of ``multiple``."""
    pad_h, pad_w = (-x.shape[-2]) % multiple, (-x.shape[-1]) % multiple
    return F.pad(x, (0, pad_w, 0, pad_h)) if pad_h or pad_w else x


class PatchEmbed(nn.Module):
    """Strided convolution + norm: (B, C_in, H, W) -> (B, ceil(H/s), ceil(W/s), C).

    The stem (``is_stem``) uses ``patch_size`` 4; downsampling between stages 2. With
    ``use_conv_embed`` the convolution overlaps: 7x7 padding 2 (stem) or 3x3 padding 1.
    """

    def __init__(self, in_channels: int, embed_dims: int, patch_size: int,
                 use_conv_embed: bool, is_stem: bool, norm_cfg: dict):
        super().__init__()
        self.patch_size = patch_size
        kernel, padding = patch_size, 0
        if use_conv_embed:
            kernel, padding = (7, 2) if is_stem else (3, 1)
        self.proj = nn.Conv2d(in_channels, embed_dims, kernel, patch_size, padding)
        self.norm = build_norm_layer(norm_cfg, embed_dims)[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(pad_to_multiple(x, self.patch_size))
        return self.norm(x.permute(0, 2, 3, 1))


class FocalModulation(nn.Module):
    """Focal modulation on a (B, H, W, C) token map; returns (B, H, W, C).

    ``f`` projects to the query q, the context and L + 1 gates; the context passes through
    L chained depthwise convolutions (focal levels, kernel ``2k + focal_window``), each level
    weighted by its gate, plus the global context (mean of the deepest level) weighted by
    the last gate. The aggregated context is mixed by ``h`` into the modulator, and
    ``out = proj(q * modulator)``.
    """

    def __init__(self, dims: int, focal_level: int, focal_window: int, proj_drop: float = 0.,
                 use_postln_in_modulation: bool = False, normalize_modulator: bool = False,
                 focal_factor: int = 2):
        super().__init__()
        self.focal_level = focal_level
        self.normalize_modulator = normalize_modulator
        self.f = nn.Linear(dims, 2 * dims + focal_level + 1)
        self.h = nn.Conv2d(dims, dims, 1)
        self.proj = nn.Linear(dims, dims)
        self.proj_drop = nn.Dropout(proj_drop)
        self.focal_layers = nn.ModuleList()
        for k in range(focal_level):
            kernel = focal_factor * k + focal_window
            self.focal_layers.append(nn.Sequential(
                nn.Conv2d(dims, dims, kernel, padding=kernel // 2, groups=dims, bias=False),
                nn.GELU()))
        self.ln = nn.LayerNorm(dims) if use_postln_in_modulation else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = x.shape[-1]
        q, ctx, gates = self.f(x).split([dims, dims, self.focal_level + 1], dim=-1)
        # (B, C, H, W) views of channels-last memory; convolutions keep that layout.
        ctx = ctx.contiguous().permute(0, 3, 1, 2)
        gates = gates.permute(0, 3, 1, 2)
        ctx_all = 0
        for level, focal_layer in enumerate(self.focal_layers):
            ctx = focal_layer(ctx)
            ctx_all = ctx_all + ctx * gates[:, level:level + 1]
        ctx_global = F.gelu(ctx.mean((2, 3), keepdim=True))
        ctx_all = ctx_all + ctx_global * gates[:, self.focal_level:]
        if self.normalize_modulator:
            ctx_all = ctx_all / (self.focal_level + 1)
        modulator = self.h(ctx_all).permute(0, 2, 3, 1)
        out = q * modulator
        if self.ln is not None:
            out = self.ln(out)
        return self.proj_drop(self.proj(out))


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2 on (..., C)."""

    def __init__(self, dims: int, hidden_dims: int, drop: float = 0.):
        super().__init__()
        self.fc1 = nn.Linear(dims, hidden_dims)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dims, dims)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class FocalNetBlock(nn.Module):
    """Focal modulation + MLP with residuals on (B, H, W, C).

    Pre-norm: x + gamma_1 * mod(norm1(x)); with ``use_postln``: x + gamma_1 * norm1(mod(x)).
    ``gamma_1``/``gamma_2`` are layer-scale parameters when ``use_layerscale``.
    """

    def __init__(self, dims: int, focal_level: int, focal_window: int, mlp_ratio: float,
                 drop: float, drop_path: float, use_postln: bool,
                 use_postln_in_modulation: bool, normalize_modulator: bool,
                 use_layerscale: bool, layerscale_value: float, norm_cfg: dict):
        super().__init__()
        self.use_postln = use_postln
        self.norm1 = build_norm_layer(norm_cfg, dims)[1]
        self.modulation = FocalModulation(dims, focal_level, focal_window, drop,
                                          use_postln_in_modulation, normalize_modulator)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = build_norm_layer(norm_cfg, dims)[1]
        self.mlp = Mlp(dims, int(dims * mlp_ratio), drop)
        self.gamma_1 = self.gamma_2 = None
        if use_layerscale:
            self.gamma_1 = nn.Parameter(layerscale_value * torch.ones(dims))
            self.gamma_2 = nn.Parameter(layerscale_value * torch.ones(dims))

    def _residual(self, x, branch, norm, gamma):
        y = norm(branch(x)) if self.use_postln else branch(norm(x))
        return x + self.drop_path(y if gamma is None else gamma * y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._residual(x, self.modulation, self.norm1, self.gamma_1)
        return self._residual(x, self.mlp, self.norm2, self.gamma_2)


class FocalNetStage(nn.Module):
    """``blocks`` on (B, H, W, C), then the optional ``downsample`` to the next stage."""

    def __init__(self, dims: int, depth: int, drop_paths: Sequence[float],
                 downsample: bool, use_conv_embed: bool, with_cp: bool, norm_cfg: dict,
                 **block_cfg):
        super().__init__()
        self.with_cp = with_cp
        self.blocks = nn.ModuleList([
            FocalNetBlock(dims, drop_path=drop_paths[j], norm_cfg=norm_cfg, **block_cfg)
            for j in range(depth)])
        self.downsample = PatchEmbed(dims, 2 * dims, 2, use_conv_embed, False,
                                     norm_cfg) if downsample else None

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B, H, W, C) -> (stage output (B, H, W, C), next input (B, H/2, W/2, 2C))."""
        for block in self.blocks:
            if self.with_cp and x.requires_grad:
                x = cp.checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        if self.downsample is None:
            return x, x
        return x, self.downsample(x.permute(0, 3, 1, 2))


@register_backbone
class FocalNet(BaseModule):
    """FocalNet backbone for dense prediction.

    State-dict keys are the authors' (``patch_embed``, ``layers.{i}.blocks.{j}``,
    ``layers.{i}.downsample``) plus one ``norm{i}`` per output, so their ImageNet and
    detection checkpoints load without a key map; ``init_cfg=dict(type='Pretrained',
    checkpoint=...)`` adapts focal kernels and levels on load (``mmfocal.models.checkpoint``).

    Args:
        patch_size (int): Stride of the stem. Default 4.
        in_channels (int): Input channels. Default 3.
        embed_dims (int): Channels of stage 0; stage i has ``embed_dims * 2**i``.
        depths (Sequence[int]): Blocks per stage.
        mlp_ratio (float): MLP hidden size / channels.
        drop_rate (float): Dropout after the MLP layers and the modulation projection.
        drop_path_rate (float): Stochastic depth, rising linearly from 0 over all blocks.
        focal_levels (int | Sequence[int]): Focal levels L, for all stages or per stage.
        focal_windows (int | Sequence[int]): Kernel of the first focal level; level k has
            ``2k + focal_window``. The papers' dense models use 9 (ImageNet: 3).
        use_conv_embed (bool): Overlapping stem (7x7) and downsampling (3x3) convolutions.
        use_postln (bool): Norms after the modulation/MLP instead of before.
        use_postln_in_modulation (bool): LayerNorm ``modulation.ln`` before ``proj``.
        use_layerscale (bool): Learnable ``gamma_1``/``gamma_2`` per block.
        layerscale_value (float): Initial layer-scale value.
        normalize_modulator (bool): Divide the aggregated context by L + 1.
        norm_cfg (dict): Norm layer config. Default LN.
        out_indices (Sequence[int]): Stages whose outputs (B, C_i, H_i, W_i) are returned,
            taken before the stage's downsampling, H_i = ceil(H / 2**(i + 2)).
        frozen_stages (int): -1 freezes nothing, 0 the stem, i the stem and stages < i.
        with_cp (bool): Gradient checkpointing of every block.
        init_cfg (dict, optional): e.g. ``dict(type='Pretrained', checkpoint=PATH)``.
    """

    def __init__(self,
                 patch_size: int = 4,
                 in_channels: int = 3,
                 embed_dims: int = 96,
                 depths: Sequence[int] = (2, 2, 6, 2),
                 mlp_ratio: float = 4.,
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.2,
                 focal_levels: Union[int, Sequence[int]] = 2,
                 focal_windows: Union[int, Sequence[int]] = 9,
                 use_conv_embed: bool = False,
                 use_postln: bool = False,
                 use_postln_in_modulation: bool = False,
                 use_layerscale: bool = False,
                 layerscale_value: float = 1e-4,
                 normalize_modulator: bool = False,
                 norm_cfg: dict = dict(type='LN'),
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 with_cp: bool = False,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        depths = as_stage_list(depths, 'depths')
        focal_levels = as_stage_list(focal_levels, 'focal_levels')
        focal_windows = as_stage_list(focal_windows, 'focal_windows')
        out_indices = tuple(out_indices)
        if not out_indices or any(i not in range(NUM_STAGES) for i in out_indices):
            raise ValueError(f'out_indices must be a non-empty subset of 0..{NUM_STAGES - 1}, '
                             f'got {out_indices}')
        if frozen_stages not in range(-1, NUM_STAGES + 1):
            raise ValueError(f'frozen_stages must be in -1..{NUM_STAGES}, got {frozen_stages}')
        if not 0 <= drop_path_rate < 1:
            raise ValueError(f'drop_path_rate must be in [0, 1), got {drop_path_rate}')
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        self.num_features = [embed_dims * 2**i for i in range(NUM_STAGES)]

        self.patch_embed = PatchEmbed(in_channels, embed_dims, patch_size, use_conv_embed,
                                      True, norm_cfg)
        drop_paths = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.layers = nn.ModuleList()
        for i in range(NUM_STAGES):
            self.layers.append(FocalNetStage(
                self.num_features[i], depths[i],
                drop_paths[sum(depths[:i]):sum(depths[:i + 1])],
                downsample=i < NUM_STAGES - 1, use_conv_embed=use_conv_embed,
                with_cp=with_cp, norm_cfg=norm_cfg, focal_level=focal_levels[i],
                focal_window=focal_windows[i], mlp_ratio=mlp_ratio, drop=drop_rate,
                use_postln=use_postln, use_postln_in_modulation=use_postln_in_modulation,
                normalize_modulator=normalize_modulator, use_layerscale=use_layerscale,
                layerscale_value=layerscale_value))
        for i in out_indices:
            self.add_module(f'norm{i}', build_norm_layer(norm_cfg, self.num_features[i])[1])
        self.apply(self._init_default)
        self._freeze_stages()

    @staticmethod
    def _init_default(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=.02)
            nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.LayerNorm):
            nn.init.constant_(m.weight, 1.0)
            nn.init.constant_(m.bias, 0)

    def init_weights(self) -> None:
        """Load ``init_cfg``'s pretrained checkpoint with adaptation, or defer to mmengine."""
        if self.init_cfg is not None and self.init_cfg.get('type') == 'Pretrained':
            load_pretrained(self, self.init_cfg['checkpoint'], self.init_cfg.get('prefix'))
            self._freeze_stages()
        else:
            super().init_weights()

    def _freeze_stages(self) -> None:
        frozen = []
        if self.frozen_stages >= 0:
            frozen.append(self.patch_embed)
        for i in range(self.frozen_stages):
            frozen.append(self.layers[i])
            if i in self.out_indices:
                frozen.append(getattr(self, f'norm{i}'))
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        return self

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """(B, C_in, H, W) -> tuple of (B, C_i, ceil(H / 2**(i+2)), ceil(W / 2**(i+2)))."""
        x = self.patch_embed(x.contiguous(memory_format=torch.channels_last))
        outs = []
        for i, stage in enumerate(self.layers):
            out, x = stage(x)
            if i in self.out_indices:
                outs.append(getattr(self, f'norm{i}')(out).permute(0, 3, 1, 2))
        return tuple(outs)
