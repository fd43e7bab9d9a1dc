"""What mmfocal's two backbones share: the staged skeleton (any number of stages, four in
the papers' hierarchical models) and its layers.

Token maps are (B, H, W, C) contiguous throughout; convolutions read (B, C, H, W)
``permute`` views of them (channels-last strides), so layout changes copy nothing. Only the
outputs are copied to contiguous (B, C, H, W): necks and heads expect that layout, and some
of their ops (mmcv's RoIAlign among them) index their input as if it were.

How the backbones compute on each device type is one :class:`ComputePath` in
:data:`COMPUTE_PATHS`; every choice computes the same function.
"""
import re
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.drop import DropPath
from mmengine.model import BaseModule

from ...compat import Size, autocast_enabled, is_tracing
from ..checkpoint import CheckpointRules, load_pretrained, to_classifier

PRETRAINED_KEYS = ('type', 'checkpoint', 'prefix', 'strict')


@dataclass
class ComputePath:
    """How the backbones compute on one device type: the same function either way, only
    speed and memory differ.

    Attributes:
        recompute (bool): with gradients, the focal levels (``FocalContext``), the MLP
            (:class:`GeluMlp`) and the focal attention (``GatheredAttention``) are autograd
            Functions that keep less for backward and recompute the rest there; else plain
            autograd over the same operations.
        channels_last_convs (bool): FocalNet's depthwise focal convolutions run on
            channels-last memory (the tokens' own layout); else on (B, C, H, W) copies.
        chunk_bytes (int, optional): the recomputing Functions create their largest
            temporaries (the MLP's hidden activation and gradient, the attention's scores)
            for chunks of tokens or windows of about this many bytes, which an allocator
            without a cache of its own reuses while they are in cache, instead of a fresh
            mapping per call; None: for the whole map at once (one kernel each).
        forward_weight_grad (bool): ``FocalContext`` takes the focal kernels' weight
            gradients from a depthwise convolution forward (``depthwise_weight_grad``);
            else from PyTorch's convolution backward.
    """
    recompute: bool = True
    channels_last_convs: bool = True
    chunk_bytes: Optional[int] = None
    forward_weight_grad: bool = True


#: The :class:`ComputePath` of each device type (the 'cuda' entry for device types without
#: one). Assign an entry before a step to take another path, as
#: ``tools/analysis/benchmark.py --paths`` does.
COMPUTE_PATHS = {'cpu': ComputePath(recompute=True, channels_last_convs=True,
                                    chunk_bytes=2**22),
                 'cuda': ComputePath(recompute=True, channels_last_convs=False,
                                     forward_weight_grad=False)}


def compute_path(device: torch.device) -> ComputePath:
    """The :class:`ComputePath` of ``device``'s type."""
    return COMPUTE_PATHS.get(device.type, COMPUTE_PATHS['cuda'])


def recomputes(x: torch.Tensor, dropout: float = 0., handles_autocast: bool = True) -> bool:
    """Whether a recomputing autograd Function computes a layer on x: with gradients,
    without a tracer (:func:`mmfocal.compat.is_tracing`) or active dropout, where x's
    device's :class:`ComputePath` recomputes; for a Function that does not choose its own
    dtype (``handles_autocast`` False), also without autocast."""
    return torch.is_grad_enabled() and not is_tracing() and not dropout and \
        (handles_autocast or not autocast_enabled(x.device.type)) and \
        compute_path(x.device).recompute


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def as_depths(depths: Sequence[int]) -> List[int]:
    """Blocks per stage: one positive int per stage, at least one stage."""
    if isinstance(depths, (list, tuple)) and depths and all(
            is_int(d) and d >= 1 for d in depths):
        return list(depths)
    raise ValueError('depths must be a non-empty list of positive ints, the blocks of each '
                     f'stage (its length is the number of stages), got {depths!r}')


def as_stage_list(value: Union[int, Sequence[int]], name: str, stages: int,
                  minimum: int = 1) -> List[int]:
    """An int for every one of ``stages`` stages, or one int >= ``minimum`` per stage."""
    values = [value] * stages if is_int(value) else value
    if isinstance(values, (list, tuple)) and len(values) == stages and all(
            is_int(v) and v >= minimum for v in values):
        return list(values)
    raise ValueError(f'{name} must be an int >= {minimum} or {stages} such ints (one per '
                     f'stage of depths), got {value!r}')


def check_positive_int(**values) -> None:
    for name, value in values.items():
        if not is_int(value) or value < 1:
            raise ValueError(f'{name} must be a positive int, got {value!r}')


def check_bool(**values) -> None:
    for name, value in values.items():
        if not isinstance(value, bool):
            raise TypeError(f'{name} must be True or False, got {value!r}')


def check_positive_number(**values) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not 0 < value < float('inf'):
            raise ValueError(f'{name} must be a positive finite number, got {value!r}')


def check_layer_norm(norm_cfg) -> None:
    if not isinstance(norm_cfg, dict) or norm_cfg.get('type') not in ('LN', 'LayerNorm'):
        raise ValueError('norm_cfg must be dict(type=\'LN\', ...): tokens are normalised '
                         f'over their channels (last dimension), got {norm_cfg!r}')


def padding(size: Size, multiple: int) -> Size:
    """What brings ``size`` (an int, or a 0-dim tensor where a tracer records sizes) up to a
    multiple of ``multiple``."""
    return (multiple - size % multiple) % multiple


def known_zero(*sizes: Size) -> bool:
    """Whether every size is the int 0; a traced size is never known, so that one graph
    pads whatever input it gets."""
    return all(isinstance(s, int) and s == 0 for s in sizes)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad (B, C, H, W) on the right/bottom so that H and W are multiples of ``multiple``."""
    pad_h, pad_w = padding(x.shape[-2], multiple), padding(x.shape[-1], multiple)
    return x if known_zero(pad_h, pad_w) else F.pad(x, (0, pad_w, 0, pad_h))


class PatchEmbed(nn.Module):
    """Strided convolution + norm: (B, C_in, H, W) -> (B, ceil(H/s), ceil(W/s), C).

    The input is zero-padded on the right/bottom to a multiple of the stride s. The stem
    (``is_stem``) has s = ``patch_size`` 4, downsampling between stages s = 2. With
    ``use_conv_embed`` the convolution overlaps: 7x7 padding 2 (stem) or 3x3 padding 1.
    """

    def __init__(self, in_channels: int, embed_dims: int, *, stride: int,
                 use_conv_embed: bool, is_stem: bool, norm_cfg: dict):
        super().__init__()
        self.stride = stride
        self.non_overlapping = not use_conv_embed  # kernel = stride: a linear layer too
        kernel, padding = stride, 0
        if use_conv_embed:
            kernel, padding = (7, 2) if is_stem else (3, 1)
        self.proj = nn.Conv2d(in_channels, embed_dims, kernel, stride=stride, padding=padding)
        self.norm = build_norm_layer(norm_cfg, embed_dims)[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_to_multiple(x.contiguous(memory_format=torch.channels_last), self.stride)
        if self.non_overlapping and torch.is_grad_enabled() and not is_tracing():
            return self.norm(self.patch_linear(x))
        return self.norm(self.proj(x).permute(0, 2, 3, 1))

    def patch_linear(self, x: torch.Tensor) -> torch.Tensor:
        """The non-overlapping convolution as a linear layer over the s x s patches:
        (B, C_in, H, W) with H, W multiples of s -> (B, H/s, W/s, C). Its backward is two
        matrix products, where the convolution's backward is several times slower on
        CPUs; with gradients (and no tracer) it replaces the convolution."""
        batch, dims, height, width = x.shape
        s = self.stride
        patches = x.permute(0, 2, 3, 1).reshape(batch, height // s, s, width // s, s, dims)
        patches = patches.transpose(2, 3).reshape(batch, height // s, width // s, -1)
        weight = self.proj.weight.permute(0, 2, 3, 1).reshape(self.proj.out_channels, -1)
        return F.linear(patches, weight, self.proj.bias)


#: the fewest rows of a chunk of :func:`row_chunks`: fewer make slow matrix products
MIN_CHUNK_ROWS = 1024


def chunk_rows(rows: int, row_bytes: int, device: torch.device,
               minimum: Optional[int] = None) -> int:
    """Rows (tokens, windows) per chunk: about the device's :attr:`ComputePath.chunk_bytes`
    at ``row_bytes`` per row, at least ``minimum`` (default :data:`MIN_CHUNK_ROWS`); all
    ``rows`` where the path has no chunk size."""
    limit = compute_path(device).chunk_bytes
    minimum = MIN_CHUNK_ROWS if minimum is None else minimum
    return rows if limit is None else max(minimum, limit // row_bytes)


def row_chunks(rows: int, row_bytes: int, device: torch.device,
               minimum: Optional[int] = None) -> List[slice]:
    """Slices covering ``rows`` rows in chunks of :func:`chunk_rows` rows."""
    step = chunk_rows(rows, row_bytes, device, minimum)
    return [slice(i, i + step) for i in range(0, rows, step)]


class GeluMlp(torch.autograd.Function):
    """fc2(GELU(fc1(x))) for x (..., C), weights (C4, C) and (C, C4), returning (..., C).

    Saves x and the hidden pre-activation only: the GELU output, as large, is recomputed
    in backward, into the buffer that then takes the hidden gradient, whose GELU backward
    runs in place. A block's largest saved tensor and one of its largest allocations are
    gone; the arithmetic is that of autograd plus one GELU. The GELU output and the hidden
    gradient exist for one chunk of tokens at a time (:func:`row_chunks`): on the CPU a
    whole map's would be a fresh mapping of the allocator on every call, whose page faults
    cost more than the GELU that fills it.
    """

    @staticmethod
    def forward(fn_ctx, x, weight1, bias1, weight2, bias2):
        pre = F.linear(x, weight1, bias1)
        fn_ctx.save_for_backward(x, pre, weight1, weight2)
        pre = pre.view(-1, pre.shape[-1])
        out = x.new_empty(pre.shape[0], weight2.shape[0])
        for part in row_chunks(pre.shape[0], pre.shape[1] * pre.element_size(), x.device):
            torch.addmm(bias2, F.gelu(pre[part]), weight2.t(), out=out[part])
        return out.view(*x.shape[:-1], -1)

    @staticmethod
    def backward(fn_ctx, grad):
        x, pre, weight1, weight2 = fn_ctx.saved_tensors
        shape = x.shape
        x, pre = x.reshape(-1, x.shape[-1]), pre.view(-1, pre.shape[-1])
        grad_out = grad.reshape(-1, grad.shape[-1])
        grad_x = torch.empty_like(x)
        grad_weight1, grad_weight2 = torch.zeros_like(weight1), torch.zeros_like(weight2)
        grad_bias1 = pre.new_zeros(pre.shape[1])
        for part in row_chunks(pre.shape[0], pre.shape[1] * pre.element_size(), x.device):
            hidden = F.gelu(pre[part])
            grad_weight2.addmm_(grad_out[part].t(), hidden)
            grad_pre = torch.mm(grad_out[part], weight2, out=hidden)
            torch.ops.aten.gelu_backward.grad_input(grad_pre, pre[part], grad_input=grad_pre)
            torch.mm(grad_pre, weight1, out=grad_x[part])
            grad_weight1.addmm_(grad_pre.t(), x[part])
            grad_bias1 += grad_pre.sum(0)
        return (grad_x.view(shape), grad_weight1, grad_bias1, grad_weight2, grad_out.sum(0))


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2 on (..., C); with gradients and without dropout, autocast or a
    tracer (:func:`mmfocal.compat.is_tracing`), as :class:`GeluMlp` where the device's
    :class:`ComputePath` recomputes."""

    def __init__(self, dims: int, hidden_dims: int, *, drop: float = 0.):
        super().__init__()
        self.fc1 = nn.Linear(dims, hidden_dims)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dims, dims)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if recomputes(x, dropout=self.drop.p if self.training else 0.,
                      handles_autocast=False):
            return GeluMlp.apply(x, self.fc1.weight, self.fc1.bias, self.fc2.weight,
                                 self.fc2.bias)
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class ResidualBlock(nn.Module):
    """What a block of either backbone has after its token mixer (focal modulation, focal
    attention): ``drop_path``, ``norm2`` and ``mlp``, the layer-scale parameters ``gamma_1``
    and ``gamma_2``, and the residual sum of a branch."""

    def _add_mlp(self, dims: int, *, mlp_ratio: float, drop: float, drop_path: float,
                 use_layerscale: bool, layerscale_value: float, norm_cfg: dict) -> None:
        """Build drop path, ``norm2``, the MLP (hidden width ``dims * mlp_ratio``) and, with
        ``use_layerscale``, the gammas (``layerscale_value`` everywhere); the mixer's
        modules are built before, so that they initialise in the same order as ever."""
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = build_norm_layer(norm_cfg, dims)[1]
        self.mlp = Mlp(dims, int(dims * mlp_ratio), drop=drop)
        self.gamma_1 = self.gamma_2 = None
        if use_layerscale:
            self.gamma_1 = nn.Parameter(layerscale_value * torch.ones(dims))
            self.gamma_2 = nn.Parameter(layerscale_value * torch.ones(dims))

    def residual(self, x: torch.Tensor, y: torch.Tensor,
                 gamma: Optional[torch.Tensor]) -> torch.Tensor:
        """x + drop_path(gamma * y) (without layer scale: x + drop_path(y)), (B, H, W, C)."""
        return x + self.drop_path(y if gamma is None else gamma * y)


class Stage(nn.Module):
    """``blocks`` on (B, H, W, C), then the optional ``downsample`` (a :class:`PatchEmbed`)."""

    def __init__(self, blocks: List[nn.Module], downsample: Union[nn.Module, None], *,
                 with_cp: bool):
        super().__init__()
        self.with_cp = with_cp
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample

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


def output_norm(key: str, state_dict, target) -> bool:
    """A dense output norm ``norm{i}``: classification checkpoints have none."""
    return re.match(r'norm\d+\.', key) is not None


class StagedBackbone(BaseModule):
    """Stem, one :class:`Stage` per entry of ``depths`` and one ``norm{i}`` per output index,
    as mmdet's Swin; or, as an image classifier's trunk (``final_norm``), the authors'
    ImageNet model up to its final ``norm``.

    Subclasses build ``patch_embed`` and ``layers`` with :meth:`_build_stages` and then call
    :meth:`_finish_init`; their ``checkpoint_rules`` extend these (the authors' key roots,
    the classifier's final ``norm`` and ``head``, the output norms as expected gaps).
    """

    checkpoint_rules = CheckpointRules(
        roots=('patch_embed', 'layers', r'norm\d*', 'head'), classifier=(r'(norm|head)\.', ),
        expected_gaps=(output_norm, ))

    def __init__(self, *, depths: Sequence[int], out_indices: Optional[Sequence[int]],
                 final_norm: bool, frozen_stages: int, drop_rate: float,
                 drop_path_rate: float, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.depths = as_depths(depths)
        stages = len(self.depths)
        check_bool(final_norm=final_norm)
        if final_norm and out_indices is not None:
            raise ValueError('final_norm=True returns the last stage through the final norm '
                             f'only: leave out_indices at None, got {out_indices!r}')
        if out_indices is None:
            out_indices = (stages - 1, ) if final_norm else tuple(range(stages))
        if not isinstance(out_indices, (list, tuple)) or not out_indices or len(
                set(out_indices)) != len(out_indices) or not all(
                is_int(i) and i in range(stages) for i in out_indices):
            raise ValueError(f'out_indices must be distinct stages in 0..{stages - 1} (the '
                             f'model has {stages} stages, one per entry of depths), got '
                             f'{out_indices!r}')
        out_indices = tuple(out_indices)
        if not is_int(frozen_stages) or frozen_stages not in range(-1, stages + 1):
            raise ValueError(f'frozen_stages must be an int in -1..{stages} (the model has '
                             f'{stages} stages), got {frozen_stages!r}')
        for name, rate in (('drop_rate', drop_rate), ('drop_path_rate', drop_path_rate)):
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or \
                    not 0 <= rate < 1:
                raise ValueError(f'{name} must be a number in [0, 1), got {rate!r}')
        self._check_init_cfg(init_cfg)
        self.out_indices = out_indices
        self.final_norm = final_norm
        self.frozen_stages = frozen_stages
        self.pos_drop = nn.Dropout(drop_rate)  # the authors' dropout after the stem

    @staticmethod
    def _check_init_cfg(init_cfg) -> None:
        if isinstance(init_cfg, list) and any(
                isinstance(c, dict) and c.get('type') == 'Pretrained' for c in init_cfg):
            raise ValueError('init_cfg of type Pretrained must be given alone, as a dict: '
                             f'{init_cfg}')
        if not (isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained'):
            return
        unknown = set(init_cfg) - set(PRETRAINED_KEYS)
        if unknown:
            raise ValueError(f'init_cfg of type Pretrained takes {PRETRAINED_KEYS}, got the '
                             f'unknown keys {sorted(unknown)}: {init_cfg}')
        if not init_cfg.get('checkpoint') or not isinstance(init_cfg['checkpoint'], str):
            raise ValueError(f'init_cfg of type Pretrained needs a checkpoint path: {init_cfg}')
        if not isinstance(init_cfg.get('strict', True), bool):
            raise ValueError(f'init_cfg strict must be True or False: {init_cfg}')

    @staticmethod
    def drop_path_rates(depths: Sequence[int], drop_path_rate: float) -> List[List[float]]:
        """Per stage, the drop-path rates of its blocks, rising linearly over all blocks."""
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        return [rates[sum(depths[:i]):sum(depths[:i + 1])] for i in range(len(depths))]

    def _build_stages(self, make_block: Callable[[int, int, float], nn.Module], *,
                      in_channels: int, embed_dims: int, patch_size: int,
                      use_conv_embed: bool, norm_cfg: dict, drop_path_rate: float,
                      with_cp: bool) -> List[int]:
        """Build the stem ``patch_embed`` and ``layers``, one stage per entry of
        ``self.depths``: stage i holds depths[i] blocks ``make_block(i, dims_i, drop_path)``
        of width dims_i = embed_dims * 2**i (drop-path rates rising linearly over all
        blocks) and, but for the last stage, the stride-2 patch embedding to the next
        width. Returns the widths."""
        stages = len(self.depths)
        dims = [embed_dims * 2**i for i in range(stages)]
        self.patch_embed = PatchEmbed(in_channels, embed_dims, stride=patch_size,
                                      use_conv_embed=use_conv_embed, is_stem=True,
                                      norm_cfg=norm_cfg)
        drop_paths = self.drop_path_rates(self.depths, drop_path_rate)
        self.layers = nn.ModuleList()
        for i in range(stages):
            blocks = [make_block(i, dims[i], rate) for rate in drop_paths[i]]
            downsample = PatchEmbed(
                dims[i], dims[i + 1], stride=2, use_conv_embed=use_conv_embed, is_stem=False,
                norm_cfg=norm_cfg) if i < stages - 1 else None
            self.layers.append(Stage(blocks, downsample, with_cp=with_cp))
        return dims

    def _finish_init(self, num_features: Sequence[int], norm_cfg: dict) -> None:
        """Add the output norms (``norm{i}``, or the final ``norm``); freeze what
        ``frozen_stages`` says (also under DDP)."""
        self.num_features = list(num_features)
        for i in self.out_indices:
            norm = build_norm_layer(norm_cfg, num_features[i])[1]
            nn.init.constant_(norm.weight, 1.0)
            nn.init.constant_(norm.bias, 0)
            self.add_module(self.output_norm_name(i), norm)
        self._freeze_stages()

    def output_norm_name(self, stage: int) -> str:
        """``norm{stage}``; a classifier's trunk (``final_norm``): ``norm``, the authors'
        name of their ImageNet model's final norm, which dense configs do not load."""
        return 'norm' if self.final_norm else f'norm{stage}'

    def _checkpoint_filter(self, state_dict: dict, prefix: str, *args) -> None:
        """mmpretrain's ``ImageClassifier`` runs this before it loads ``state_dict`` (its
        keys under ``prefix``): a whole classifier's checkpoint in any layout the backbone's
        rules know (the authors', timm's, Hugging Face's, its own) is rewritten in place
        into the classifier's keys, adapted and checked (:func:`to_classifier`)."""
        own = {k[len(prefix):]: state_dict.pop(k) for k in list(state_dict)
               if k.startswith(prefix)}
        state_dict.update({prefix + k: v for k, v in to_classifier(own, self).items()})

    def init_weights(self) -> None:
        """Load ``init_cfg``'s pretrained checkpoint with adaptation, or defer to mmengine."""
        if isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'Pretrained':
            load_pretrained(self, self.init_cfg['checkpoint'], self.init_cfg.get('prefix'),
                            self.init_cfg.get('strict', True))
            self._freeze_stages()
        else:
            super().init_weights()

    def _freeze_stages(self) -> None:
        frozen = []
        if self.frozen_stages >= 0:
            frozen += [self.patch_embed, self.pos_drop]
        for i in range(self.frozen_stages):
            frozen.append(self.layers[i])
            if i in self.out_indices:
                frozen.append(getattr(self, self.output_norm_name(i)))
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        return self

    def _check_input(self, x) -> None:
        """A floating-point (B, in_channels, H, W) tensor with B, H, W >= 1."""
        channels = self.patch_embed.proj.in_channels
        expected = f'a floating-point (B, {channels}, H, W) tensor'
        if not isinstance(x, torch.Tensor):
            raise TypeError(f'{type(self).__name__} expects {expected}, got '
                            f'{type(x).__name__}')
        if not x.is_floating_point():
            raise TypeError(f'{type(self).__name__} expects {expected}, got dtype {x.dtype} '
                            '(convert images with .float())')
        if x.dim() != 4 or x.shape[1] != channels or any(s < 1 for s in x.shape):
            raise ValueError(f'{type(self).__name__} expects {expected} with B, H, W >= 1, '
                             f'got shape {tuple(x.shape)}')

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """(B, C_in, H, W) -> tuple of contiguous (B, C_i, H_i, W_i) for i in
        ``out_indices`` (with ``final_norm``: the last stage only), with
        C_i = embed_dims * 2**i, H_i = ceil(H / (patch_size * 2**i)) and W_i alike."""
        self._check_input(x)
        x = self.pos_drop(self.patch_embed(x))
        outs = []
        for i, stage in enumerate(self.layers):
            out, x = stage(x)
            if i in self.out_indices:
                norm = getattr(self, self.output_norm_name(i))
                outs.append(norm(out).permute(0, 3, 1, 2).contiguous())
        return tuple(outs)
