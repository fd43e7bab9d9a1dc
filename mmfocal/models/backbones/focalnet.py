"""FocalNet: focal modulation networks (Yang et al., ECCV 2022) for dense prediction.

Tokens stay in one memory layout from the stem to the outputs: (B, H, W, C) contiguous,
which is what LayerNorm and the linear layers read. Where a convolution needs (B, C, H, W)
it gets a ``permute`` view of the same memory (channels-last strides), and returns its
result in that layout, so no tensor is copied for a layout change.
"""
from typing import Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.drop import DropPath
from mmengine.model.weight_init import trunc_normal_

from ...registry import register_backbone
from .base import (NUM_STAGES, Mlp, PatchEmbed, Stage, StagedBackbone, as_stage_list,
                   check_bool, check_layer_norm, check_positive_int, check_positive_number)


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
        # The convolutions read channels-last views, so their weight gradients come back
        # with channels-last strides. For 1x1 and depthwise kernels that is the same memory
        # as the default layout, but DDP compares strides and warns ("grad strides do not
        # match bucket view strides"); the weights take the gradients' strides.
        for conv in (self.h, *(layer[0] for layer in self.focal_layers)):
            conv.weight = nn.Parameter(conv.weight.detach().to(memory_format=torch.channels_last))
        self.ln = nn.LayerNorm(dims) if use_postln_in_modulation else None

    def modulate(self, x: torch.Tensor):
        """x (B, H, W, C) -> query q (B, H, W, C), gates (B, L + 1, H, W) (levels 1..L, then
        the global gate) and modulator h(ctx_all) (B, H, W, C)."""
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
        return q, gates, self.h(ctx_all).permute(0, 2, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, _, modulator = self.modulate(x)
        out = q * modulator
        if self.ln is not None:
            out = self.ln(out)
        return self.proj_drop(self.proj(out))


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


def _check_args(patch_size, in_channels, embed_dims, mlp_ratio, focal_windows,
                layerscale_value, norm_cfg, **flags) -> None:
    check_positive_int(patch_size=patch_size, in_channels=in_channels, embed_dims=embed_dims)
    check_positive_number(mlp_ratio=mlp_ratio, layerscale_value=layerscale_value)
    if any(w % 2 == 0 for w in focal_windows):
        raise ValueError('focal_windows (kernel of the first focal level) must be odd, so '
                         f'that the kernel has a centre, got {tuple(focal_windows)}')
    check_layer_norm(norm_cfg)
    check_bool(**flags)


@register_backbone
class FocalNet(StagedBackbone):
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
        drop_rate (float): Dropout after the stem, the MLP layers and the modulation
            projection.
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
        super().__init__(out_indices, frozen_stages, drop_rate, drop_path_rate, init_cfg)
        depths = as_stage_list(depths, 'depths')
        focal_levels = as_stage_list(focal_levels, 'focal_levels')
        focal_windows = as_stage_list(focal_windows, 'focal_windows')
        _check_args(patch_size, in_channels, embed_dims, mlp_ratio, focal_windows,
                    layerscale_value, norm_cfg, use_conv_embed=use_conv_embed,
                    use_postln=use_postln, use_postln_in_modulation=use_postln_in_modulation,
                    use_layerscale=use_layerscale, normalize_modulator=normalize_modulator,
                    with_cp=with_cp)
        dims = [embed_dims * 2**i for i in range(NUM_STAGES)]
        self.patch_embed = PatchEmbed(in_channels, embed_dims, patch_size, use_conv_embed,
                                      True, norm_cfg)
        drop_paths = self.drop_path_rates(depths, drop_path_rate)
        self.layers = nn.ModuleList()
        for i in range(NUM_STAGES):
            blocks = [FocalNetBlock(
                dims[i], focal_levels[i], focal_windows[i], mlp_ratio, drop_rate, rate,
                use_postln, use_postln_in_modulation, normalize_modulator, use_layerscale,
                layerscale_value, norm_cfg) for rate in drop_paths[i]]
            downsample = PatchEmbed(dims[i], dims[i + 1], 2, use_conv_embed, False,
                                    norm_cfg) if i < NUM_STAGES - 1 else None
            self.layers.append(Stage(blocks, downsample, with_cp))
        self.apply(self._init_default)
        self._finish_init(dims, norm_cfg)

    @staticmethod
    def _init_default(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=.02)
            nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.LayerNorm):
            nn.init.constant_(m.weight, 1.0)
            nn.init.constant_(m.bias, 0)
