"""FocalNet: focal modulation networks (Yang et al., NeurIPS 2022) for dense prediction and
image classification.

Tokens stay in one memory layout from the stem to the outputs: (B, H, W, C) contiguous,
which is what LayerNorm and the linear layers read. Where a convolution needs (B, C, H, W)
it gets a ``permute`` view of the same memory (channels-last strides), and returns its
result in that layout, so no tensor is copied for a layout change.
"""
import re
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model.weight_init import trunc_normal_

from ...compat import is_tracing, static_int
from ...registry import register_backbone
from ..checkpoint import (Adaptation, CheckpointRules, WeightLayout, grow_focal_levels,
                          resize_kernel)
from .base import (ResidualBlock, StagedBackbone, as_stage_list, check_bool, check_layer_norm,
                   check_positive_int, check_positive_number, compute_path, recomputes)


def depthwise_weight_grad(x: torch.Tensor, grad: torch.Tensor, kernel: int) -> torch.Tensor:
    """Weight gradient of a stride-1 depthwise convolution with ``kernel // 2`` zero padding.

    x, grad: (B, C, H, W), any strides (here views of channels-last memory) -> (C, 1, k, k).

    dW[c, i, j] = sum over b, y, x of grad[b, c, y, x] * x_pad[b, c, y + i, x + j]: per
    plane (b, c), the correlation of the padded input (H + k - 1, W + k - 1) with the
    gradient (H, W) at the k x k offsets, which is the forward of a depthwise convolution of
    B * C groups whose kernels are the gradient's planes, summed over the images. The input
    is copied once, padded, to (H + k - 1, W + k - 1, B, C) memory (channels-last planes,
    the forward convolutions' layout; no transposition for B = 1), the gradient once to
    (B, C, H, W) memory (the kernels' layout that the convolution takes without another
    copy), so the weight gradient runs at the speed of the forward convolution instead of
    that of the generic depthwise convolution backward.
    """
    batch, dims, height, width = x.shape
    pad, planes = kernel // 2, batch * dims
    padded = x.new_zeros(height + 2 * pad, width + 2 * pad, batch, dims)
    padded[pad:pad + height, pad:pad + width] = x.permute(2, 3, 0, 1)
    planes_first = padded.view(1, height + 2 * pad, width + 2 * pad, planes).permute(0, 3, 1, 2)
    kernels = grad.contiguous().view(planes, 1, height, width)
    out = F.conv2d(planes_first, kernels, groups=planes)
    return out.reshape(batch, dims, kernel, kernel).sum(0).unsqueeze(1)


def conv_format(x: torch.Tensor) -> torch.memory_format:
    """Memory format of the focal convolutions on x's device, as its
    :class:`~.base.ComputePath` says: by default channels-last on the CPU (oneDNN's fast
    depthwise path, and the tokens' own layout), contiguous (B, C, H, W) elsewhere."""
    return torch.channels_last if compute_path(x.device).channels_last_convs else \
        torch.contiguous_format


def depthwise_conv(x: torch.Tensor, weight: torch.Tensor, flip: bool = False) -> torch.Tensor:
    """Stride-1 depthwise convolution with ``k // 2`` zero padding of x (B, C, H, W) by
    weight (C, 1, k, k) (``flip``: rotated by 180 degrees, the input gradient's kernel),
    in :func:`conv_format`; computes in x's dtype."""
    fmt = conv_format(x)
    weight = weight.flip(-2, -1) if flip else weight
    return F.conv2d(x.contiguous(memory_format=fmt),
                    weight.to(x.dtype).clone(memory_format=fmt),
                    padding=static_int(weight.shape[-1]) // 2,
                    groups=static_int(weight.shape[0]))


def forward_conv_backward(x: torch.Tensor, grad: torch.Tensor, weight: torch.Tensor):
    """Gradients (input (B, C, H, W), weight (C, 1, k, k)) of ``depthwise_conv(x, weight)``
    for its output gradient grad (B, C, H, W), both by convolution forwards: the flipped
    kernel's convolution of grad and :func:`depthwise_weight_grad`."""
    return (depthwise_conv(grad, weight, flip=True),
            depthwise_weight_grad(x, grad, weight.shape[-1]))


def aten_conv_backward(x: torch.Tensor, grad: torch.Tensor, weight: torch.Tensor):
    """The same gradients as :func:`forward_conv_backward`, by PyTorch's convolution
    backward, in :func:`conv_format`."""
    fmt, pad = conv_format(x), weight.shape[-1] // 2
    grad_input, grad_weight, _ = torch.ops.aten.convolution_backward(
        grad.contiguous(memory_format=fmt), x.contiguous(memory_format=fmt),
        weight.to(x.dtype).clone(memory_format=fmt), None, [1, 1], [pad, pad], [1, 1],
        False, [0, 0], weight.shape[0], [True, True, False])
    return grad_input, grad_weight


def depthwise_conv_backward(x: torch.Tensor, grad: torch.Tensor, weight: torch.Tensor):
    """Gradients (input, weight) of ``depthwise_conv(x, weight)`` for the output gradient
    grad, x and grad (B, C, H, W), weight (C, 1, k, k): by :func:`forward_conv_backward`
    where the device's :attr:`~.base.ComputePath.forward_weight_grad` says so (the CPU:
    oneDNN's depthwise weight gradient is several times slower than its forward; a choice
    timed at run time would make runs differ at float rounding, which resumed training must
    not), else by PyTorch's convolution backward."""
    if compute_path(x.device).forward_weight_grad:
        return forward_conv_backward(x, grad, weight)
    return aten_conv_backward(x, grad, weight)


def parameter_strided(weight: torch.Tensor) -> torch.Tensor:
    """weight (C, 1, k, k) as a view whose gradient takes weight's strides before it
    accumulates: a convolution on channels-last memory returns the gradient with another
    stride of the singleton dimension, and DDP warns on every such mismatch."""
    if not weight.requires_grad:
        return weight
    view = weight.view_as(weight)
    view.register_hook(lambda grad: grad if grad.stride() == weight.stride() else
                       torch.empty_like(weight).copy_(grad))
    return view


def focal_levels(ctx0: torch.Tensor, weights) -> list:
    """[(pre-activation, ctx_l) for l = 1..L]: ctx_l = GELU(dwconv_l(ctx_{l-1})), from
    ctx0 (B, C, H, W) and the L depthwise kernels (C, 1, k_l, k_l)."""
    out, ctx = [], ctx0
    for weight in weights:
        pre = depthwise_conv(ctx, weight)
        ctx = F.gelu(pre)
        out.append((pre, ctx))
    return out


def gated_sum(levels: list, gates: torch.Tensor) -> torch.Tensor:
    """The L focal levels of :func:`focal_levels`, gates (B, L + 1, H, W) -> ctx_all
    (B, C, H, W): the gated sum of the levels and the global context GELU(mean(ctx_L))."""
    ctx_all = levels[0][1] * gates[:, :1]
    for level, (_, ctx) in enumerate(levels[1:], 1):
        ctx_all.addcmul_(ctx, gates[:, level:level + 1])
    ctx_global = F.gelu(levels[-1][1].mean((2, 3), keepdim=True))
    return ctx_all.addcmul_(ctx_global, gates[:, len(levels):])


def aggregate_context(ctx0: torch.Tensor, gates: torch.Tensor, weights) -> torch.Tensor:
    """ctx0 (B, C, H, W), gates (B, L + 1, H, W), L depthwise kernels -> ctx_all
    (B, C, H, W) in :func:`conv_format`: the gated sum of the focal levels and the global
    context."""
    return gated_sum(focal_levels(ctx0, weights), gates)


class FocalContext(torch.autograd.Function):
    """ctx_all = sum_l gate_l * ctx_l + gate_{L+1} * GELU(mean(ctx_L)), with
    ctx_l = GELU(dwconv_l(ctx_{l-1})): the focal levels of :class:`FocalModulation`.

    Saves its inputs (the context ctx_0 and the gates are views of the ``f`` projection,
    which stays alive anyway) and the levels' pre-activations dwconv_l(ctx_{l-1}), not the
    levels: backward recomputes each ctx_l by one GELU, and gets the convolutions'
    gradients from :func:`depthwise_conv_backward`, the gates' from one buffer reused by
    every level and the global context's from matrix products; the GELU backward runs in
    place. Computes in the context's dtype (autocast has chosen it for ``f``).
    """

    @staticmethod
    def forward(fn_ctx, ctx0, gates, *weights):
        with torch.autocast(ctx0.device.type, enabled=False):
            levels = focal_levels(ctx0, weights)
            ctx_all = gated_sum(levels, gates)
        fn_ctx.save_for_backward(ctx0, gates, *weights, *(pre for pre, _ in levels))
        return ctx_all

    @staticmethod
    def backward(fn_ctx, grad):
        ctx0, gates, *saved = fn_ctx.saved_tensors
        num_levels = len(saved) // 2
        weights, pres = saved[:num_levels], saved[num_levels:]
        with torch.autocast(grad.device.type, enabled=False):
            levels = [(pre, F.gelu(pre)) for pre in pres]
            grad = grad.to(ctx0.dtype)
            batch, dims, height, width = grad.shape

            def rows(t):  # (B, C', H, W) -> (B, H * W, C')
                return t.permute(0, 2, 3, 1).reshape(batch, height * width, t.shape[1])

            # gate gradients: sum over channels of grad * context, one (B, H, W) per gate
            grad_gates = grad.new_empty(batch, height, width, num_levels + 1)
            product = torch.empty_like(grad)
            for level, (_, ctx) in enumerate(levels):
                grad_gates[..., level] = torch.mul(grad, ctx, out=product).sum(1)
            mean = levels[-1][1].mean((2, 3), keepdim=True)
            grad_gates[..., num_levels] = torch.bmm(
                rows(grad), F.gelu(mean).view(batch, dims, 1)).view(batch, height, width)
            # global context: mean over the map of the last level
            grad_mean = torch.bmm(rows(grad).transpose(1, 2), rows(gates[:, num_levels:]))
            grad_mean = torch.ops.aten.gelu_backward(grad_mean.view_as(mean), mean)
            grad_ctx = torch.addcmul(grad_mean / (height * width), grad,
                                     gates[:, num_levels - 1:num_levels])
            grad_weights = [None] * num_levels
            for level in reversed(range(num_levels)):
                grad_pre = torch.ops.aten.gelu_backward.grad_input(
                    grad_ctx, levels[level][0], grad_input=grad_ctx)
                below = levels[level - 1][1] if level else ctx0
                grad_ctx, grad_weight = depthwise_conv_backward(below, grad_pre, weights[level])
                grad_weights[level] = torch.empty_like(weights[level]).copy_(grad_weight)
                if level:
                    grad_ctx.addcmul_(grad, gates[:, level - 1:level])
        return (grad_ctx, grad_gates.permute(0, 3, 1, 2), *grad_weights)


class FocalModulation(nn.Module):
    """Focal modulation on a (B, H, W, C) token map; returns (B, H, W, C).

    ``f`` projects to the query q, the context and L + 1 gates; the context passes through
    L chained depthwise convolutions (focal levels, kernel ``2k + focal_window``), each level
    weighted by its gate, plus the global context (mean of the deepest level) weighted by
    the last gate. The aggregated context is mixed by ``h`` into the modulator, and
    ``out = proj(q * modulator)``.

    ``focal_layers.{k}`` (depthwise conv, GELU) defines level k and its checkpoint keys;
    the levels are computed by :func:`aggregate_context`, with gradients through
    :class:`FocalContext` where the device's :class:`~.base.ComputePath` recomputes.
    """

    def __init__(self, dims: int, *, focal_level: int, focal_window: int,
                 proj_drop: float = 0., use_postln_in_modulation: bool = False,
                 normalize_modulator: bool = False, focal_factor: int = 2):
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

    def modulate(self, x: torch.Tensor):
        """x (B, H, W, C) -> query q (B, H, W, C), gates (B, L + 1, H, W) (levels 1..L, then
        the global gate) and modulator h(ctx_all) (B, H, W, C)."""
        dims = x.shape[-1]
        q, ctx, gates = self.f(x).split([dims, dims, self.focal_level + 1], dim=-1)
        # (B, C, H, W) views of channels-last memory; convolutions keep that layout.
        gates = gates.permute(0, 3, 1, 2)
        ctx, weights = ctx.permute(0, 3, 1, 2), [layer[0].weight for layer in self.focal_layers]
        if not torch.is_grad_enabled() or is_tracing():
            # the same forward in plain ops, which every tracer sees (FLOPs, ONNX, compile)
            ctx_all = aggregate_context(ctx, gates, weights)
        elif recomputes(x):  # FocalContext computes in the context's dtype
            ctx_all = FocalContext.apply(ctx, gates, *weights)
        else:  # plain autograd
            ctx_all = aggregate_context(ctx, gates, [parameter_strided(w) for w in weights])
        if self.normalize_modulator:
            ctx_all = ctx_all / (self.focal_level + 1)
        # h is a 1x1 convolution: a linear layer over the channels of (B, H, W, C)
        modulator = F.linear(ctx_all.permute(0, 2, 3, 1), self.h.weight.flatten(1),
                             self.h.bias)
        return q, gates, modulator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, _, modulator = self.modulate(x)
        out = q * modulator
        if self.ln is not None:
            out = self.ln(out)
        return self.proj_drop(self.proj(out))


class FocalNetBlock(ResidualBlock):
    """Focal modulation + MLP with residuals on (B, H, W, C).

    Pre-norm: x + gamma_1 * mod(norm1(x)); with ``use_postln``: x + gamma_1 * norm1(mod(x)).
    ``gamma_1``/``gamma_2`` are layer-scale parameters when ``use_layerscale``.
    """

    def __init__(self, dims: int, *, focal_level: int, focal_window: int, mlp_ratio: float,
                 drop: float, drop_path: float, use_postln: bool,
                 use_postln_in_modulation: bool, normalize_modulator: bool,
                 use_layerscale: bool, layerscale_value: float, norm_cfg: dict):
        super().__init__()
        self.use_postln = use_postln
        self.norm1 = build_norm_layer(norm_cfg, dims)[1]
        self.modulation = FocalModulation(
            dims, focal_level=focal_level, focal_window=focal_window, proj_drop=drop,
            use_postln_in_modulation=use_postln_in_modulation,
            normalize_modulator=normalize_modulator)
        self._add_mlp(dims, mlp_ratio=mlp_ratio, drop=drop, drop_path=drop_path,
                      use_layerscale=use_layerscale, layerscale_value=layerscale_value,
                      norm_cfg=norm_cfg)

    def _residual(self, x, branch, norm, gamma):
        return self.residual(x, norm(branch(x)) if self.use_postln else branch(norm(x)), gamma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._residual(x, self.modulation, self.norm1, self.gamma_1)
        return self._residual(x, self.mlp, self.norm2, self.gamma_2)


def _check_args(*, patch_size, in_channels, embed_dims, mlp_ratio, focal_windows,
                layerscale_value, norm_cfg, **flags) -> None:
    check_positive_int(patch_size=patch_size, in_channels=in_channels, embed_dims=embed_dims)
    check_positive_number(mlp_ratio=mlp_ratio, layerscale_value=layerscale_value)
    if any(w % 2 == 0 for w in focal_windows):
        raise ValueError('focal_windows (kernel of the first focal level) must be odd, so '
                         f'that the kernel has a centre, got {tuple(focal_windows)}')
    check_layer_norm(norm_cfg)
    check_bool(**flags)


# ------------------------------------------------------------------ checkpoint rules

FOCAL_KERNEL = r'\.modulation\.focal_layers\.\d+\.0\.weight$'


def added_level_kernel(key: str, state_dict, target) -> bool:
    """The kernel of a focal level the checkpoint lacks (its ``modulation.f`` has fewer
    rows than the model's): it keeps its initialisation, its gate starts at zero."""
    if not re.search(FOCAL_KERNEL, key):
        return False
    f_key = key.split('.modulation.')[0] + '.modulation.f.weight'
    return f_key in state_dict and f_key in target and \
        state_dict[f_key].shape[0] < target[f_key].shape[0]


def _timm_downsample(match: 're.Match') -> str:  # timm downsamples at a stage's start
    return f'layers.{int(match.group(1)) - 1}.downsample.'


#: focal kernels zero-padded at the centre (or centre-cropped) to the model's size, and
#: ``modulation.f`` grown for added focal levels (new gates zero)
FOCALNET_ADAPTATIONS = (
    Adaptation(key=FOCAL_KERNEL, what='focal kernels',
               fits=lambda value, shape: value.dim() == 4 and value.shape[:2] == shape[:2],
               adapt=lambda value, shape, key: resize_kernel(value, shape[-1]),
               how=lambda value, shape: 'zero-padded at the centre'
               if shape[-1] > value.shape[-1] else 'centre-cropped'),
    Adaptation(key=r'\.modulation\.f\.(weight|bias)$', what='focal-level gates',
               fits=lambda value, shape: value.shape[1:] == shape[1:],
               adapt=lambda value, shape, key: grow_focal_levels(value, shape[0], key),
               how=lambda value, shape: 'focal levels added, new gates zero'))

#: timm's FocalNet (NCHW, 1x1 convolutions, downsampling at the start of a stage)
TIMM_LAYOUT = WeightLayout(
    name='timm', detect=r'stem\.proj\.', roots=('stem', ),
    renames=((r'^stem\.', 'patch_embed.'), (r'^layers\.(\d+)\.downsample\.', _timm_downsample),
             (r'\.ls1\.gamma', '.gamma_1'), (r'\.ls2\.gamma', '.gamma_2'),
             (r'\.norm([12])_post\.', r'.norm\1.'),  # the post-norm blocks' norms
             (r'\.modulation\.norm\.', '.modulation.ln.'), (r'^head\.fc\.', 'head.')),
    flatten=r'\.(modulation\.(f|proj)|mlp\.fc1|mlp\.fc2)\.weight$')

#: Hugging Face transformers' ``FocalNetModel`` (bare keys),
#: ``FocalNetForImageClassification`` and ``FocalNetBackbone`` (under ``focalnet.``)
HUGGING_FACE_LAYOUT = WeightLayout(
    name='huggingface', detect=r'(focalnet\.)?(embeddings\.patch_embeddings|encoder\.stages)\.',
    roots=('embeddings', r'encoder\.stages', 'layernorm', 'classifier', 'focalnet'),
    renames=((r'^focalnet\.', ''),
             (r'^embeddings\.patch_embeddings\.projection\.', 'patch_embed.proj.'),
             (r'^embeddings\.norm\.', 'patch_embed.norm.'),
             (r'^encoder\.stages\.(\d+)\.layers\.(\d+)\.', r'layers.\1.blocks.\2.'),
             (r'^encoder\.stages\.(\d+)\.', r'layers.\1.'),
             (r'\.downsample\.projection\.', '.downsample.proj.'),
             (r'\.modulation\.projection_in\.', '.modulation.f.'),
             (r'\.modulation\.projection_context\.', '.modulation.h.'),
             (r'\.modulation\.projection_out\.', '.modulation.proj.'),
             (r'\.modulation\.layernorm\.', '.modulation.ln.'),
             (r'^layernorm\.', 'norm.'), (r'^classifier\.', 'head.')))


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
        depths (Sequence[int]): Blocks per stage; its length is the number of stages
            (the papers' hierarchical models: 4, FocalNet's isotropic ones: 1).
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
        out_indices (Sequence[int], optional): Stages whose outputs (B, C_i, H_i, W_i) are
            returned, taken before the stage's downsampling, H_i = ceil(H / (patch_size *
            2**i)). Default: every stage.
        final_norm (bool): The trunk of an image classifier (mmpretrain's
            ``ImageClassifier``): returns a one-tuple, the last stage's output through the
            final LayerNorm ``norm`` of the authors' ImageNet model, so that their
            classification checkpoints load whole; out_indices must stay None.
        frozen_stages (int): -1 freezes nothing, 0 the stem, i the stem and stages < i.
        with_cp (bool): Gradient checkpointing of every block.
        init_cfg (dict, optional): e.g. ``dict(type='Pretrained', checkpoint=PATH)``.
    """

    pictures = 'gates_and_modulator'  # what mmfocal.visualization draws of it
    checkpoint_rules = StagedBackbone.checkpoint_rules + CheckpointRules(
        adaptations=FOCALNET_ADAPTATIONS, expected_gaps=(added_level_kernel, ),
        layouts=(TIMM_LAYOUT, HUGGING_FACE_LAYOUT))

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
                 out_indices: Optional[Sequence[int]] = None,
                 final_norm: bool = False,
                 frozen_stages: int = -1,
                 with_cp: bool = False,
                 init_cfg=None):
        super().__init__(depths=depths, out_indices=out_indices, final_norm=final_norm,
                         frozen_stages=frozen_stages, drop_rate=drop_rate,
                         drop_path_rate=drop_path_rate, init_cfg=init_cfg)
        stages = len(self.depths)
        focal_levels = as_stage_list(focal_levels, 'focal_levels', stages)
        focal_windows = as_stage_list(focal_windows, 'focal_windows', stages)
        _check_args(patch_size=patch_size, in_channels=in_channels, embed_dims=embed_dims,
                    mlp_ratio=mlp_ratio, focal_windows=focal_windows,
                    layerscale_value=layerscale_value, norm_cfg=norm_cfg,
                    use_conv_embed=use_conv_embed,
                    use_postln=use_postln, use_postln_in_modulation=use_postln_in_modulation,
                    use_layerscale=use_layerscale, normalize_modulator=normalize_modulator,
                    with_cp=with_cp)

        def block(i: int, dims: int, drop_path: float) -> FocalNetBlock:
            return FocalNetBlock(
                dims, focal_level=focal_levels[i], focal_window=focal_windows[i],
                mlp_ratio=mlp_ratio, drop=drop_rate, drop_path=drop_path,
                use_postln=use_postln, use_postln_in_modulation=use_postln_in_modulation,
                normalize_modulator=normalize_modulator, use_layerscale=use_layerscale,
                layerscale_value=layerscale_value, norm_cfg=norm_cfg)

        dims = self._build_stages(
            block, in_channels=in_channels, embed_dims=embed_dims, patch_size=patch_size,
            use_conv_embed=use_conv_embed, norm_cfg=norm_cfg, drop_path_rate=drop_path_rate,
            with_cp=with_cp)
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
