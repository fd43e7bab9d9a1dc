"""Focal Transformer: focal self-attention (Yang et al., NeurIPS 2021) for dense prediction.

Every block partitions the (zero-padded) token map into windows of ``window_size`` and lets
each window's queries attend, in one softmax:

1. the tokens of their own window (Swin's relative position bias),
2. the surrounding fine tokens within ``expand_size`` of the window, in the slot layout of the
   released models (dense bias ``relative_position_bias_table_to_neighbors``),
3. for each pooled focal level, the ``s_r x s_r`` pooled tokens centred on the window
   (bias ``relative_position_bias_table_to_windows.{k}``).

The released implementation gathers 2. with four ``torch.roll`` copies of keys and values
and 3. with ``unfold``. Here both are one index gather: for every feature size, the positions
of all keys of every window in a table of fine + pooled tokens, and an additive mask for
keys that do not exist, are computed once and cached (:func:`key_layout`); a block then
runs one ``qkv`` projection, one gather and one fused
``F.scaled_dot_product_attention`` whose additive mask holds the position biases. When
gradients are needed the attention is :class:`GatheredAttention`, which keeps less for the
backward pass and sends the key/value gradients back to the token table with ``index_add_``.
"""
import functools
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model.weight_init import trunc_normal_

from ...compat import Size, feature_size, is_tracing
from ...registry import register_backbone
from ..checkpoint import PADDLE, Adaptation, CheckpointRules, WeightLayout, resize_bias_table
from .base import (ResidualBlock, StagedBackbone, as_stage_list, check_bool, check_layer_norm,
                   check_positive_int, check_positive_number, is_int, known_zero, padding,
                   chunk_rows, recomputes)

POOL_METHODS = ('fc', 'conv', 'mean', 'max')


# ----------------------------------------------------------------------------- key layout


def neighbour_offsets(window: int, expand: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Offsets (dy, dx) from a window's top-left corner of its surrounding-token slots.

    The released layout: four copies of the key map, rolled so that window position (r, c)
    holds the token at (r, c) + (e, e), (e, -e), (-e, e), (-e, -e) (e = ``expand``), in that
    order; of each copy the w^2 positions (raster order) are kept except the block whose
    token lies inside the window. 4 * (w^2 - (w - e)^2) slots (132 for w = 7, e = 3), of
    which some address the same token twice. Built from Python ints (no data-dependent
    shapes) so that it traces under ``torch.compile`` and ``torch.export``.
    """
    dys, dxs = [], []
    for oy, ox in ((expand, expand), (expand, -expand), (-expand, expand), (-expand, -expand)):
        for r in range(window):
            for c in range(window):
                if not (0 <= r + oy < window and 0 <= c + ox < window):
                    dys.append(r + oy)
                    dxs.append(c + ox)
    return torch.tensor(dys), torch.tensor(dxs)


def relative_position_index(window: int, region: int) -> torch.Tensor:
    """(w^2, region^2) index into a ((w + region - 1)^2)-entry bias table.

    Query (qi, qj) in [0, w)^2, key (ki, kj) in [0, region)^2:
    (qi - ki + region - 1) * (w + region - 1) + (qj - kj + region - 1). ``region = w`` is
    Swin's table.
    """
    q = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window),
                                   indexing='ij')).flatten(1)
    k = torch.stack(torch.meshgrid(torch.arange(region), torch.arange(region),
                                   indexing='ij')).flatten(1)
    rel = q[:, :, None] - k[:, None, :] + region - 1
    return rel[0] * (window + region - 1) + rel[1]


def ceil_div(size: Size, step: int) -> Size:
    """ceil(size / step) of a non-negative int or int tensor (a traced size)."""
    return (size + step - 1) // step


class KeyLayout(NamedTuple):
    """Where every window's queries and keys are in the token table of one feature size.

    The token table holds the H*W fine tokens (raster order) followed by each pooled
    level's map (raster order). nW windows, N keys per window.
    """
    query_index: torch.Tensor  # (nW * w^2,) token of each window position (0 in padding)
    key_index: torch.Tensor  # (nW * N,) token of each key
    key_mask: torch.Tensor  # (nW, N) 0 for keys that exist, -inf for the others
    token_index: torch.Tensor  # (H * W,) position of each fine token in (nW * w^2,)
    num_windows: Size  # an int, or a 0-dim tensor when the sizes are traced tensors
    row_windows: Size  # windows per row of the window grid (the same)
    with_neighbours: bool


def window_layout(height: Size, width: Size, window: int, expand: int, focal_window: int,
                  pooled_levels: int, wrap: bool, device: torch.device) -> KeyLayout:
    """Key positions and mask of every window for an (height, width) token map.

    Windows tile the map zero-padded to multiples of ``window`` on the right/bottom.
    Keys per window, in order: its own w^2 tokens; the surrounding slots of
    :func:`neighbour_offsets` when ``expand`` > 0 and the padded map has more than one
    window; for each pooled level k the ``focal_window``^2 cells (raster order) centred on
    the cell that holds the window, level k pooling sub-windows of ``window * 2**k``.
    Masked: keys in the padding, pooled cells outside the pooled map and, unless ``wrap``,
    surrounding tokens outside the map. With ``wrap`` the surrounding positions wrap around
    the padded map (torch.roll semantics, as released).

    The sizes are Python ints, or 0-dim int tensors when a tracer records them (the
    TorchScript ONNX exporter): every size-dependent value is then tensor arithmetic on
    them, so one exported graph serves every input size. A map of one window cannot be
    told from a larger one in such a graph: its surrounding slots are kept there and all
    masked, which leaves the attention as it is without them.
    """
    n_h, n_w = ceil_div(height, window), ceil_div(width, window)
    num_windows = n_h * n_w
    grid_y, grid_x = torch.meshgrid(torch.arange(n_h), torch.arange(n_w), indexing='ij')
    oy, ox = grid_y.reshape(-1, 1) * window, grid_x.reshape(-1, 1) * window  # (nW, 1)
    r, c = torch.meshgrid(torch.arange(window), torch.arange(window), indexing='ij')
    dy, dx = r.flatten(), c.flatten()
    traced = isinstance(num_windows, torch.Tensor)
    with_neighbours = expand > 0 and (traced or num_windows > 1)
    if with_neighbours:
        ny, nx = neighbour_offsets(window, expand)
        dy, dx = torch.cat([dy, ny]), torch.cat([dx, nx])
    y, x = oy + dy, ox + dx  # (nW, fine keys)
    if wrap:
        y, x = y % (n_h * window), x % (n_w * window)
    fine = (y >= 0) & (y < height) & (x >= 0) & (x < width)
    if traced and with_neighbours:
        fine = fine & ((torch.arange(fine.shape[1]) < window**2) | (num_windows > 1))
    valid, index = [fine], [torch.where(fine, y * width + x, 0)]
    offset = height * width
    for k in range(pooled_levels):
        cell = window * 2**k
        p_h, p_w = ceil_div(height, cell), ceil_div(width, cell)
        a = torch.arange(focal_window) - focal_window // 2
        py = oy // cell + a.repeat_interleave(focal_window)  # (nW, s_r^2), raster order
        px = ox // cell + a.repeat(focal_window)
        inside = (py >= 0) & (py < p_h) & (px >= 0) & (px < p_w)
        valid.append(inside)
        index.append(torch.where(inside, offset + py * p_w + px, 0))
        offset = offset + p_h * p_w
    valid, index = torch.cat(valid, 1), torch.cat(index, 1)
    key_mask = torch.zeros(valid.shape).masked_fill(~valid, float('-inf'))
    ty, tx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing='ij')
    token_index = ((ty // window) * n_w + tx // window) * window**2 + \
        (ty % window) * window + tx % window
    return KeyLayout(
        query_index=index[:, :window**2].flatten().to(device),
        key_index=index.flatten().to(device), key_mask=key_mask.to(device),
        token_index=token_index.flatten().to(device), num_windows=num_windows,
        row_windows=n_w, with_neighbours=with_neighbours)


# the layouts of the sizes seen, for eager calls (traced code computes them in its graph:
# the cache must not keep a tracer's tensors)
key_layout = functools.lru_cache(maxsize=64)(window_layout)


class Chunk(NamedTuple):
    """n consecutive windows that :class:`GatheredAttention` computes at once, with the key
    slots that exist for at least one of them (N' of the layout's N)."""
    windows: slice  # of the nW windows
    key_index: torch.Tensor  # (n * N',) token of each kept key
    slots: Optional[torch.Tensor]  # (N',) the kept slots; None: all N
    key_mask: torch.Tensor  # (n, 1, N') 0 for keys that exist, -inf for the others


def window_chunks(num_windows: int, row_windows: int, step: int) -> List[slice]:
    """Slices of about ``step`` windows that do not cross a row of the window grid (rows
    of ``row_windows``) unless they hold whole rows: the windows of one row share the rows
    of pooled cells that exist."""
    if step >= row_windows:
        step -= step % row_windows
        return [slice(i, i + step) for i in range(0, num_windows, step)]
    parts = -(-row_windows // step)
    bounds = [row_windows * p // parts for p in range(parts + 1)]
    return [slice(row + a, row + b) for row in range(0, num_windows, row_windows)
            for a, b in zip(bounds, bounds[1:])]


@functools.lru_cache(maxsize=256)
def chunk_plan(key_index: torch.Tensor, key_mask: torch.Tensor, row_windows: int,
               step: int) -> Tuple[Chunk, ...]:
    """The :class:`Chunk` s of a layout's windows for chunks of about ``step`` windows
    (:func:`window_chunks`). A key slot masked for every window of a chunk (pooled cells
    beyond the map's edge, surrounding tokens in the padding) is left out of its keys:
    its softmax weight would be 0. Cached per layout (its own tensors, by identity) and
    step; key_index (nW * N,), key_mask (nW, N)."""
    windows, slots = key_mask.shape
    keys = key_index.view(windows, slots)
    plan = []
    for w in window_chunks(windows, row_windows, step):
        exists = key_mask[w].eq(0).any(0)
        kept = None if bool(exists.all()) else exists.nonzero().flatten()
        index, mask = (keys[w], key_mask[w]) if kept is None else \
            (keys[w][:, kept], key_mask[w][:, kept])
        plan.append(Chunk(windows=w, key_index=index.flatten(), slots=kept,
                          key_mask=mask[:, None]))
    return tuple(plan)


# ----------------------------------------------------------------------------- modules


def window_queries(qkv: torch.Tensor, query_index: torch.Tensor, area: int) -> torch.Tensor:
    """qkv (3, B, nH, T, d) -> (B, nH, nW, A, d): the queries of every window position
    (``query_index`` (nW * A,)). A function, not a method of :class:`GatheredAttention`,
    so that torch 2.1's dynamo traces it."""
    q = qkv[0].index_select(2, query_index)
    return q.view(*q.shape[:2], -1, area, q.shape[-1])


class GatheredAttention(torch.autograd.Function):
    """softmax(q k^T * scale + bias + key_mask) v, every window's queries, keys and values
    gathered from the projected tokens.

    q = ``qkv[0][:, :, query_index]``; each :class:`Chunk` of windows takes its keys and
    values ``qkv[1:][:, :, :, chunk.key_index]`` and its mask. Saved for backward are the
    projection qkv (the ``qkv`` layer's output, alive anyway: nothing is copied) and the
    output: the gathered queries, keys and values, the scores and the probabilities are
    recomputed there (the probabilities alone would be N / d times the size of the output)
    by the same operations, and the gradients go back to the tokens with ``index_add_``
    (the gradient of advanced indexing, ``index_put_`` with accumulation, is several times
    slower on CPU) into one tensor for all three, so that autograd zero-fills none for the
    selections of q, k and v. The additive mask is never materialised per window: the
    position bias is shared by all windows and the key mask by all query positions. On the
    CPU the chunks' scores take about :attr:`~.base.ComputePath.chunk_bytes`, so that the
    gathered keys, scores and probabilities stay in cache instead of being allocated for
    the whole map; without a chunk size (other devices) all windows at once (one kernel
    each).

    qkv: (3, B, nH, T, d) queries, keys and values of the T tokens, any strides;
    query_index: (nW * A,); bias: (nH, A, N); chunks: :func:`chunk_plan` -> (B, nH, nW, A, d).
    """

    @staticmethod
    def gather(table: torch.Tensor, key_index: torch.Tensor, num_windows: int):
        kv = table.index_select(3, key_index)
        return kv.view(*kv.shape[:3], num_windows, -1, kv.shape[-1]).unbind(0)

    @staticmethod
    def probabilities(q, k, bias, key_mask, scale: float) -> torch.Tensor:
        """(B, nH, n, A, N) attention probabilities of n windows: the softmax of the scaled
        scores plus bias and key mask."""
        s = torch.matmul(q, k.transpose(-2, -1)).mul_(scale)
        return s.add_(bias[:, None]).add_(key_mask).softmax(-1)

    @staticmethod
    def chunk_bias(bias: torch.Tensor, chunk: Chunk) -> torch.Tensor:
        return bias if chunk.slots is None else bias.index_select(2, chunk.slots)

    @staticmethod
    def attend(q, table, bias, chunks: Sequence[Chunk], scale: float):
        """The attention of every window (the forward pass), chunk by chunk; q
        (B, nH, nW, A, d), table (2, B, nH, T, d) keys and values. Without gradients this
        is the whole inference path: no tensor of every window's keys or scores exists at
        once."""
        out = torch.empty_like(q)
        for chunk in chunks:
            w = chunk.windows
            k, v = GatheredAttention.gather(table, chunk.key_index, q[:, :, w].shape[2])
            attn = GatheredAttention.probabilities(
                q[:, :, w], k, GatheredAttention.chunk_bias(bias, chunk), chunk.key_mask,
                scale)
            out[:, :, w] = torch.matmul(attn, v)
        return out

    @staticmethod
    def forward(ctx, qkv, query_index, bias, chunks: Sequence[Chunk], scale: float):
        q = window_queries(qkv, query_index, bias.shape[1])
        out = GatheredAttention.attend(q, qkv[1:], bias, chunks, scale)
        ctx.save_for_backward(qkv, query_index, bias, out)
        ctx.chunks, ctx.scale = chunks, scale
        return out

    @staticmethod
    def backward(ctx, grad_out):
        qkv, query_index, bias, out = ctx.saved_tensors
        q = window_queries(qkv, query_index, bias.shape[1])
        grad_qkv = qkv.new_zeros(qkv.shape)  # contiguous: index_add_ is fastest there
        grad_q = torch.empty_like(q)
        grad_bias = torch.zeros_like(bias) if ctx.needs_input_grad[2] else None
        grad_rows = (grad_out * out).sum(-1, keepdim=True)  # softmax's sum over keys
        for chunk in ctx.chunks:
            w, index = chunk.windows, chunk.key_index
            qw, grad_w = q[:, :, w], grad_out[:, :, w]
            k, v = GatheredAttention.gather(qkv[1:], index, qw.shape[2])
            attn = GatheredAttention.probabilities(
                qw, k, GatheredAttention.chunk_bias(bias, chunk), chunk.key_mask, ctx.scale)
            grad_v = torch.matmul(attn.transpose(-2, -1), grad_w)
            grad_s = torch.matmul(grad_w, v.transpose(-2, -1))  # d loss / d attn
            grad_s.sub_(grad_rows[:, :, w]).mul_(attn)  # through softmax
            del attn
            if grad_bias is not None:  # over images, then windows: contiguous reductions
                part = grad_s.sum(0).sum(1)
                if chunk.slots is None:
                    grad_bias += part
                else:
                    grad_bias.index_add_(2, chunk.slots, part)
            grad_s.mul_(ctx.scale)
            grad_q[:, :, w] = torch.matmul(grad_s, k)
            grad_k = torch.matmul(grad_s.transpose(-2, -1), qw)
            grad_qkv[1].index_add_(2, index, grad_k.flatten(2, 3))
            grad_qkv[2].index_add_(2, index, grad_v.flatten(2, 3))
        grad_qkv[0].index_add_(2, query_index, grad_q.flatten(2, 3))
        return grad_qkv, None, grad_bias, None, None


def attention_chunks(layout: KeyLayout, qkv: torch.Tensor) -> Tuple[Chunk, ...]:
    """The :func:`chunk_plan` of ``layout`` for qkv (3, B, nH, T, d): chunks whose scores
    take about the device's :attr:`~.base.ComputePath.chunk_bytes`."""
    windows, slots = layout.key_mask.shape
    area = layout.query_index.numel() // windows
    score_bytes = qkv.shape[1] * qkv.shape[2] * area * slots * qkv.element_size()
    return chunk_plan(layout.key_index, layout.key_mask, layout.row_windows,
                      chunk_rows(windows, score_bytes, qkv.device, minimum=1))


class FocalAttention(nn.Module):
    """Focal self-attention of every window; (B, H, W, C) + pooled maps -> (B, H, W, C).

    Parameters and their keys are the released models': ``qkv``, ``proj``,
    ``relative_position_bias_table`` ((2w - 1)^2, nH), ``relative_position_bias_table_to_
    neighbors`` (1, nH, w^2, 4 (w^2 - (w - e)^2)) when ``expand_size`` > 0, and
    ``relative_position_bias_table_to_windows.{k}`` (nH, (w + s_r - 1)^2) per pooled level.
    """

    def __init__(self, dims: int, *, num_heads: int, window_size: int, expand_size: int,
                 pooled_levels: int, focal_window: int, qkv_bias: bool, qk_scale,
                 attn_drop: float, proj_drop: float):
        super().__init__()
        self.num_heads = num_heads
        self.window_size = window_size
        self.scale = qk_scale or (dims // num_heads)**-0.5
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(dims, 3 * dims, bias=qkv_bias)
        self.proj = nn.Linear(dims, dims)
        self.proj_drop = nn.Dropout(proj_drop)
        area = window_size**2
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1)**2, num_heads))
        self.register_buffer('relative_position_index',
                             relative_position_index(window_size, window_size),
                             persistent=False)
        self.relative_position_bias_table_to_neighbors = None
        if expand_size > 0:
            slots = 4 * (area - (window_size - expand_size)**2)
            self.relative_position_bias_table_to_neighbors = nn.Parameter(
                torch.zeros(1, num_heads, area, slots))
        self.relative_position_bias_table_to_windows = nn.ParameterList([
            nn.Parameter(torch.zeros(num_heads, (window_size + focal_window - 1)**2))
            for _ in range(pooled_levels)])
        self.register_buffer('relative_position_index_to_windows',
                             relative_position_index(window_size, focal_window),
                             persistent=False)
        for param in self.position_bias_tables():
            trunc_normal_(param, std=.02)

    def position_bias_tables(self) -> List[nn.Parameter]:
        tables = [self.relative_position_bias_table]
        if self.relative_position_bias_table_to_neighbors is not None:
            tables.append(self.relative_position_bias_table_to_neighbors)
        return tables + list(self.relative_position_bias_table_to_windows)

    def position_bias(self, with_neighbours: bool) -> torch.Tensor:
        """(nH, w^2, N): the bias of every query position to every key slot."""
        area = self.window_size**2
        bias = [self.relative_position_bias_table[self.relative_position_index.flatten()]
                .view(area, area, -1).permute(2, 0, 1)]
        if with_neighbours:
            bias.append(self.relative_position_bias_table_to_neighbors[0])
        bias += [table[:, self.relative_position_index_to_windows]
                 for table in self.relative_position_bias_table_to_windows]
        return torch.cat(bias, -1)

    def traced_attention(self, q, table, layout: KeyLayout, bias, key_mask):
        """The attention in plain ops for a tracer (ONNX, compile, FLOP counts): the
        position bias (nH, 1, w^2, N) and the key mask (nW, 1, N) are added to the scores
        by broadcasting, so that no (nH, nW, w^2, N) mask is built in the graph.
        q: (B, nH, nW, w^2, d); table: (2, B, nH, T, d) -> (B, nH, nW, w^2, d)."""
        batch, heads, windows, area, head_dims = q.shape
        k, v = table.index_select(3, layout.key_index).view(
            2, batch, heads, windows, -1, head_dims).unbind(0)
        scores = torch.matmul(q * self.scale, k.transpose(-2, -1)) + bias[:, None] + key_mask
        return torch.matmul(scores.softmax(-1), v)

    def plain_attention(self, qkv, layout: KeyLayout, bias, attn_drop: float):
        """The attention without :class:`GatheredAttention`'s backward: in plain ops for a
        tracer, chunk by chunk without gradients (inference), else one fused
        ``F.scaled_dot_product_attention`` with the (nH, nW, w^2, N) mask (dropout).
        qkv: (3, B, nH, T, d) -> (B, nH, nW, w^2, d)."""
        q = window_queries(qkv, layout.query_index, bias.shape[1])
        key_mask = layout.key_mask.to(qkv.dtype)[:, None]  # (nW, 1, N)
        if is_tracing():
            return self.traced_attention(q, qkv[1:], layout, bias, key_mask)
        if not torch.is_grad_enabled():
            return GatheredAttention.attend(q, qkv[1:], bias, attention_chunks(layout, qkv),
                                            self.scale)
        batch, heads, _, area, head_dims = q.shape
        windows = heads * layout.num_windows  # (head, window) pairs
        mask = bias[:, None] + key_mask  # the same for every image
        k, v = qkv[1:].index_select(3, layout.key_index).view(2, batch, windows, -1, head_dims)
        return F.scaled_dot_product_attention(
            q.view(batch, windows, area, -1), k, v, attn_mask=mask.view(1, windows, area, -1),
            dropout_p=attn_drop, scale=self.scale)

    def forward(self, x: torch.Tensor, pooled: Sequence[torch.Tensor],
                layout: KeyLayout) -> torch.Tensor:
        """x: (B, H, W, C); pooled[k]: (B, h_k, w_k, C) -> (B, H, W, C)."""
        batch, height, width, dims = x.shape
        heads = self.num_heads
        tokens = torch.cat([x.reshape(batch, -1, dims)] +
                           [p.reshape(batch, -1, dims) for p in pooled], 1)
        qkv = self.qkv(tokens).view(batch, tokens.shape[1], 3, heads, dims // heads)
        qkv = qkv.permute(2, 0, 3, 1, 4)  # (3, B, nH, T, C / nH)
        bias = self.position_bias(layout.with_neighbours).to(qkv.dtype)  # (nH, w^2, N)
        attn_drop = self.attn_drop if self.training else 0.
        if recomputes(x, dropout=attn_drop):
            out = GatheredAttention.apply(qkv, layout.query_index, bias,
                                          attention_chunks(layout, qkv), self.scale)
        else:
            out = self.plain_attention(qkv, layout, bias, attn_drop)
        # reshape: CUDA's attention kernels may return other strides than (B, nH, L, d)
        out = out.reshape(batch, heads, -1, dims // heads).transpose(1, 2)
        out = out.index_select(1, layout.token_index)
        return self.proj_drop(self.proj(out.reshape(batch, height, width, dims)))


class FocalTransformerBlock(ResidualBlock):
    """Focal self-attention + MLP with pre-norm residuals on (B, H, W, C).

    The pooled maps are computed from ``norm1(x)`` zero-padded to multiples of the
    sub-window ``window_size * 2**k`` (pooled level k): ``pool_layers.{k}`` is
    Linear(s_w^2, 1) over the sub-window's tokens ('fc', initialised to the mean) or a
    depthwise Conv2d(C, C, s_w, stride s_w) ('conv'); 'mean' and 'max' have no parameters.
    """

    def __init__(self, dims: int, *, num_heads: int, window_size: int, expand_size: int,
                 focal_levels: int, focal_window: int, pool_method: str, mlp_ratio: float,
                 qkv_bias: bool, qk_scale, drop: float, attn_drop: float, drop_path: float,
                 use_layerscale: bool, layerscale_value: float, wrap_neighbors: bool,
                 norm_cfg: dict):
        super().__init__()
        self.window_size = window_size
        self.expand_size = expand_size
        self.focal_window = focal_window
        self.pooled_levels = focal_levels - 1
        self.pool_method = pool_method
        self.wrap_neighbors = wrap_neighbors
        self.norm1 = build_norm_layer(norm_cfg, dims)[1]
        self.attn = FocalAttention(
            dims, num_heads=num_heads, window_size=window_size, expand_size=expand_size,
            pooled_levels=self.pooled_levels, focal_window=focal_window, qkv_bias=qkv_bias,
            qk_scale=qk_scale, attn_drop=attn_drop, proj_drop=drop)
        self.pool_layers = nn.ModuleList()
        for k in range(self.pooled_levels if pool_method in ('fc', 'conv') else 0):
            cell = window_size * 2**k
            self.pool_layers.append(
                nn.Linear(cell * cell, 1) if pool_method == 'fc' else
                nn.Conv2d(dims, dims, cell, stride=cell, groups=dims))
        self._add_mlp(dims, mlp_ratio=mlp_ratio, drop=drop, drop_path=drop_path,
                      use_layerscale=use_layerscale, layerscale_value=layerscale_value,
                      norm_cfg=norm_cfg)

    def pool(self, x: torch.Tensor, level: int) -> torch.Tensor:
        """(B, H, W, C) -> (B, ceil(H / s_w), ceil(W / s_w), C), s_w = window * 2**level."""
        batch, height, width, dims = x.shape
        cell = self.window_size * 2**level
        pad_h, pad_w = padding(height, cell), padding(width, cell)
        if not known_zero(pad_h, pad_w):
            x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
        p_h, p_w = (height + pad_h) // cell, (width + pad_w) // cell
        if self.pool_method == 'conv':
            return self.pool_layers[level](x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        cells = x.view(batch, p_h, cell, p_w, cell, dims)
        if self.pool_method == 'mean':
            return cells.mean((2, 4))
        if self.pool_method == 'max':
            return cells.amax((2, 4))
        layer = self.pool_layers[level]
        return torch.einsum('bhiwjc,ij->bhwc', cells, layer.weight.view(cell, cell)) + \
            layer.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = feature_size(x.shape[1]), feature_size(x.shape[2])
        layout_of = window_layout if is_tracing() else key_layout
        layout = layout_of(height, width, self.window_size, self.expand_size,
                           self.focal_window, self.pooled_levels, self.wrap_neighbors,
                           x.device)
        y = self.norm1(x)
        y = self.attn(y, [self.pool(y, k) for k in range(self.pooled_levels)], layout)
        x = self.residual(x, y, self.gamma_1)
        return self.residual(x, self.mlp(self.norm2(x)), self.gamma_2)


# ----------------------------------------------------------------------------- backbone


def _check_args(*, pretrain_img_size, patch_size, in_channels, embed_dims, num_heads,
                window_size, expand_sizes, focal_windows, pool_method, mlp_ratio, qk_scale,
                attn_drop_rate, layerscale_value, norm_cfg, **flags) -> None:
    sizes = (pretrain_img_size, ) * 2 if not isinstance(pretrain_img_size, (list, tuple)) \
        else tuple(pretrain_img_size)
    if len(sizes) != 2 or not all(is_int(s) and s > 0 for s in sizes):
        raise ValueError('pretrain_img_size must be a positive int or (height, width), '
                         f'got {pretrain_img_size!r}')
    check_positive_int(patch_size=patch_size, in_channels=in_channels,
                       embed_dims=embed_dims, window_size=window_size)
    for i, heads in enumerate(num_heads):
        if (embed_dims * 2**i) % heads:
            raise ValueError(f'stage {i} has {embed_dims * 2**i} channels, not divisible by '
                             f'num_heads[{i}] = {heads}')
    if any(e >= window_size for e in expand_sizes):
        raise ValueError(f'expand_size must be in [0, window_size = {window_size}), '
                         f'got {tuple(expand_sizes)}')
    if any(s % 2 == 0 for s in focal_windows):
        raise ValueError('focal_windows (pooled tokens per side around a window) must be '
                         f'odd, got {tuple(focal_windows)}')
    if pool_method not in POOL_METHODS:
        raise ValueError(f'pool_method must be one of {POOL_METHODS}, got {pool_method!r}')
    check_positive_number(mlp_ratio=mlp_ratio, layerscale_value=layerscale_value)
    if isinstance(attn_drop_rate, bool) or not isinstance(attn_drop_rate, (int, float)) or \
            not 0 <= attn_drop_rate < 1:
        raise ValueError(f'attn_drop_rate must be a number in [0, 1), got {attn_drop_rate!r}')
    check_layer_norm(norm_cfg)
    if qk_scale is not None:
        check_positive_number(qk_scale=qk_scale)
    check_bool(**flags)


# ------------------------------------------------------------------ checkpoint rules


def neighbour_table(key: str, state_dict, target) -> bool:
    """A table of surrounding tokens: the released 224 checkpoints lack stage 3's."""
    return key.endswith('.relative_position_bias_table_to_neighbors')


def bias_tables(key: str, heads_axis: int) -> Adaptation:
    """Position-bias tables under ``key`` whose heads lie on ``heads_axis`` (0: (nH, n)
    tables, 1: (n, nH)), up-sampled bilinearly along the other axis to the model's."""
    entries = 1 - heads_axis
    return Adaptation(
        key=key, what='position-bias tables',
        fits=lambda value, shape: value.shape[heads_axis] == shape[heads_axis],
        adapt=lambda value, shape, key: resize_bias_table(value, shape[entries],
                                                          heads_first=heads_axis == 0),
        how=lambda value, shape: 'bilinearly up-sampled')


#: position-bias tables up-sampled bilinearly to the model's windows
FOCAL_TRANSFORMER_ADAPTATIONS = (
    bias_tables(r'\.relative_position_bias_table_to_windows\.\d+$', heads_axis=0),
    bias_tables(r'\.relative_position_bias_table$', heads_axis=1))


#: PaddleViT's ports of the released ImageNet models (``.pdparams``, read by
#: ``mmfocal.models.pdparams``): the authors' keys and buffers, every ``nn.Linear`` weight
#: (the only 2-D ``.weight``) stored (in, out); the position-bias tables as the authors'
PADDLE_LAYOUT = WeightLayout(name='paddle', file_format=PADDLE, transpose=r'\.weight$')


@register_backbone
class FocalTransformer(StagedBackbone):
    """Focal Transformer backbone for dense prediction.

    State-dict keys are the authors' (``patch_embed``, ``layers.{i}.blocks.{j}.{norm1,attn,
    pool_layers,norm2,mlp}``, ``layers.{i}.downsample``) plus one ``norm{i}`` per output, so
    their ImageNet checkpoints load directly, and so do PaddleViT's ports of them
    (``.pdparams``, whose Linear weights are transposed back: :data:`PADDLE_LAYOUT`);
    ``init_cfg=dict(type='Pretrained', checkpoint=...)`` up-samples the position-bias tables
    to this model's ``focal_windows`` (``mmfocal.models.checkpoint``). Position indices are
    recomputed, never loaded.

    Surrounding tokens: every block with ``expand_size`` > 0 owns
    ``relative_position_bias_table_to_neighbors`` and uses it whenever its (padded) map has
    more than one window; a map that fits in one window (stage 3 at 224 x 224) has no
    surrounding tokens, as released. The released 224 checkpoints therefore lack stage 3's
    table, which keeps its initialisation and is reported on load.

    Args:
        pretrain_img_size (int | tuple[int]): Size of the pre-training images, accepted as
            in mmdet's Swin; the structure does not depend on it (any input size works).
        patch_size (int): Stride of the stem. Default 4.
        in_channels (int): Input channels. Default 3.
        embed_dims (int): Channels of stage 0; stage i has ``embed_dims * 2**i``.
        depths (Sequence[int]): Blocks per stage; its length is the number of stages
            (the papers' hierarchical models: 4, FocalNet's isotropic ones: 1).
        num_heads (Sequence[int]): Attention heads per stage.
        window_size (int): Window side w (queries attend per window). Default 7.
        expand_size (int | Sequence[int]): Surrounding fine tokens within this distance of
            the window (0 disables them), for all stages or per stage. Default 3.
        focal_levels (int | Sequence[int]): 1 + the number of pooled levels (released
            models: 2), for all stages or per stage. Pooled level k pools sub-windows of
            ``window_size * 2**k``.
        focal_windows (int | Sequence[int]): s_r per stage: each window attends the
            s_r x s_r pooled tokens centred on it (odd). ImageNet models: (7, 5, 3, 1);
            detection: (15, 13, 9, 7).
        pool_method (str): 'fc' (learned Linear over a sub-window), 'conv' (depthwise
            strided conv), 'mean' or 'max'.
        mlp_ratio (float): MLP hidden size / channels.
        qkv_bias (bool): Bias in ``qkv``.
        qk_scale (float, optional): Attention scale; default head_dim ** -0.5.
        drop_rate (float): Dropout after the patch embedding, MLP layers and ``attn.proj``.
        attn_drop_rate (float): Dropout of the attention weights.
        drop_path_rate (float): Stochastic depth, rising linearly from 0 over all blocks.
        use_conv_embed (bool): Overlapping stem (7x7 s4 p2) and downsampling (3x3 s2 p1).
        use_layerscale (bool): Learnable ``gamma_1``/``gamma_2`` per block.
        layerscale_value (float): Initial layer-scale value.
        wrap_neighbors (bool): Surrounding tokens wrap around the (padded) map like the
            released models (their ImageNet checkpoints then give exactly their outputs);
            by default those outside the map are masked.
        norm_cfg (dict): Norm layer config; LN.
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

    pictures = 'position_bias_tables'  # what mmfocal.visualization draws of it
    checkpoint_rules = StagedBackbone.checkpoint_rules + CheckpointRules(
        adaptations=FOCAL_TRANSFORMER_ADAPTATIONS, expected_gaps=(neighbour_table, ),
        layouts=(PADDLE_LAYOUT, ),
        # buffers of the released model that depend on the input size
        recomputed=(r'\.(relative_position_index\w*|valid_ind_\w+|attn_mask\w*|window_mask\w*)$', ))

    def __init__(self,
                 pretrain_img_size: Union[int, Tuple[int, int]] = 224,
                 patch_size: int = 4,
                 in_channels: int = 3,
                 embed_dims: int = 96,
                 depths: Sequence[int] = (2, 2, 6, 2),
                 num_heads: Sequence[int] = (3, 6, 12, 24),
                 window_size: int = 7,
                 expand_size: Union[int, Sequence[int]] = 3,
                 focal_levels: Union[int, Sequence[int]] = 2,
                 focal_windows: Union[int, Sequence[int]] = (15, 13, 9, 7),
                 pool_method: str = 'fc',
                 mlp_ratio: float = 4.,
                 qkv_bias: bool = True,
                 qk_scale=None,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.2,
                 use_conv_embed: bool = False,
                 use_layerscale: bool = False,
                 layerscale_value: float = 1e-4,
                 wrap_neighbors: bool = False,
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
        num_heads = as_stage_list(num_heads, 'num_heads', stages)
        focal_windows = as_stage_list(focal_windows, 'focal_windows', stages)
        focal_levels = as_stage_list(focal_levels, 'focal_levels', stages)
        expand_sizes = as_stage_list(expand_size, 'expand_size', stages, minimum=0)
        _check_args(pretrain_img_size=pretrain_img_size, patch_size=patch_size,
                    in_channels=in_channels, embed_dims=embed_dims, num_heads=num_heads,
                    window_size=window_size, expand_sizes=expand_sizes,
                    focal_windows=focal_windows, pool_method=pool_method,
                    mlp_ratio=mlp_ratio, qk_scale=qk_scale, attn_drop_rate=attn_drop_rate,
                    layerscale_value=layerscale_value, norm_cfg=norm_cfg, qkv_bias=qkv_bias,
                    use_conv_embed=use_conv_embed, use_layerscale=use_layerscale,
                    wrap_neighbors=wrap_neighbors, with_cp=with_cp)
        self.pretrain_img_size = pretrain_img_size

        def block(i: int, dims: int, drop_path: float) -> FocalTransformerBlock:
            return FocalTransformerBlock(
                dims, num_heads=num_heads[i], window_size=window_size,
                expand_size=expand_sizes[i], focal_levels=focal_levels[i],
                focal_window=focal_windows[i], pool_method=pool_method, mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias, qk_scale=qk_scale, drop=drop_rate, attn_drop=attn_drop_rate,
                drop_path=drop_path, use_layerscale=use_layerscale,
                layerscale_value=layerscale_value, wrap_neighbors=wrap_neighbors,
                norm_cfg=norm_cfg)

        dims = self._build_stages(
            block, in_channels=in_channels, embed_dims=embed_dims, patch_size=patch_size,
            use_conv_embed=use_conv_embed, norm_cfg=norm_cfg, drop_path_rate=drop_path_rate,
            with_cp=with_cp)
        self._init_default()
        self._finish_init(dims, norm_cfg)

    def _init_default(self) -> None:
        """Linear trunc_normal(.02) / bias 0, LayerNorm 1 / 0 (bias tables: trunc_normal
        at construction); 'fc' pooling starts as the mean of its sub-window."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=.02)
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.LayerNorm):
                nn.init.constant_(m.weight, 1.0)
                nn.init.constant_(m.bias, 0)
        for m in self.modules():
            if isinstance(m, FocalTransformerBlock) and m.pool_method == 'fc':
                for layer in m.pool_layers:
                    nn.init.constant_(layer.weight, 1 / layer.in_features)
                    nn.init.constant_(layer.bias, 0)
