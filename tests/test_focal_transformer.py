"""Focal Transformer backbone: focal self-attention against a slow reference, shapes,
checkpoint loading with bias up-sampling, tracing and compute paths (what it shares with
FocalNet: test_backbones.py)."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmfocal.compat import TORCH_VERSION
from mmfocal.models.backbones.base import COMPUTE_PATHS, ComputePath
from mmfocal.models.backbones.focal_transformer import (FocalTransformer, GatheredAttention,
                                                        chunk_plan, key_layout, window_chunks)
from mmfocal.models.checkpoint import load_pretrained

from _helpers import expected_shapes
from _steps import AMP_CASES, check_amp_step, check_cuda_equals_cpu

TINY = dict(embed_dims=32, depths=(1, 1, 1, 1), num_heads=(2, 2, 2, 4), drop_path_rate=0.)
VARIANTS = {
    'T': dict(embed_dims=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24)),
    'S': dict(embed_dims=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24)),
    'B': dict(embed_dims=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32)),
    'L': dict(embed_dims=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48)),
}
IMAGENET_WINDOWS = (7, 5, 3, 1)
# the attention as GatheredAttention or through plain autograd
PATHS = [ComputePath(recompute=True), ComputePath(recompute=False)]


# ------------------------------------------------------------------- slow reference


def reference_pool(x, block, level):
    """Pooled map of level ``level`` from the normed (H, W, C) map, one cell at a time."""
    height, width, dims = x.shape
    cell = block.window_size * 2**level
    p_h, p_w = math.ceil(height / cell), math.ceil(width / cell)
    xp = x.new_zeros(p_h * cell, p_w * cell, dims)
    xp[:height, :width] = x
    pooled = x.new_zeros(p_h, p_w, dims)
    for i in range(p_h):
        for j in range(p_w):
            tokens = xp[i * cell:(i + 1) * cell, j * cell:(j + 1) * cell]  # (s, s, C)
            if block.pool_method == 'fc':
                layer = block.pool_layers[level]
                pooled[i, j] = (tokens.reshape(-1, dims) * layer.weight[0][:, None]).sum(0) \
                    + layer.bias
            elif block.pool_method == 'conv':
                layer = block.pool_layers[level]
                pooled[i, j] = (tokens.permute(2, 0, 1) * layer.weight[:, 0]).sum((1, 2)) \
                    + layer.bias
            elif block.pool_method == 'mean':
                pooled[i, j] = tokens.reshape(-1, dims).mean(0)
            else:
                pooled[i, j] = tokens.reshape(-1, dims).amax(0)
    return pooled


def released_neighbour_slots(window, expand):
    """The released slot order: (roll shift, window position) per surrounding slot.

    Four copies rolled by (-e, -e), (-e, +e), (+e, -e), (+e, +e); from each copy the
    window positions outside [:-e, :-e], [:-e, e:], [e:, :-e], [e:, e:] are kept.
    """
    e = expand
    cut_lo, cut_hi = slice(None, -e), slice(e, None)
    copies = [((-e, -e), (cut_lo, cut_lo)), ((-e, e), (cut_lo, cut_hi)),
              ((e, -e), (cut_hi, cut_lo)), ((e, e), (cut_hi, cut_hi))]
    slots = []
    for shift, block in copies:
        dropped = torch.zeros(window, window, dtype=torch.bool)
        dropped[block] = True
        slots += [(shift, r, c) for r in range(window) for c in range(window)
                  if not dropped[r, c]]
    return slots


def reference_window(attn, block, x, pooled, wy, wx, wrap):
    """Attention output (w, w, C) of window (wy, wx) of a normed (H, W, C) map, keys
    gathered one by one with Python indexing."""
    height, width, dims = x.shape
    w, e, s_r = block.window_size, block.expand_size, block.focal_window
    heads = attn.num_heads
    n_h, n_w = math.ceil(height / w), math.ceil(width / w)
    padded_h, padded_w = n_h * w, n_w * w
    keys, biases = [], []  # token (C,), bias (nH, w*w)

    qi, qj = (t.flatten() for t in torch.meshgrid(torch.arange(w), torch.arange(w),
                                                  indexing='ij'))  # query positions

    def swin_bias(r, c):  # (nH, w*w)
        index = (qi - r + w - 1) * (2 * w - 1) + (qj - c + w - 1)
        return attn.relative_position_bias_table[index].t()

    for r in range(w):
        for c in range(w):
            y, xx = wy * w + r, wx * w + c
            if y < height and xx < width:
                keys.append(x[y, xx])
                biases.append(swin_bias(r, c))
    if e > 0 and n_h * n_w > 1:
        grid = torch.stack(torch.meshgrid(torch.arange(padded_h), torch.arange(padded_w),
                                          indexing='ij'), -1)
        rolled = {shift: torch.roll(grid, shifts=shift, dims=(0, 1))
                  for shift in ((-e, -e), (-e, e), (e, -e), (e, e))}
        table = attn.relative_position_bias_table_to_neighbors[0]
        for slot, ((sy, sx), r, c) in enumerate(released_neighbour_slots(w, e)):
            if wrap:
                y, xx = rolled[sy, sx][wy * w + r, wx * w + c].tolist()
            else:
                y, xx = wy * w + r - sy, wx * w + c - sx
            if 0 <= y < height and 0 <= xx < width:
                keys.append(x[y, xx])
                biases.append(table[:, :, slot])
    for level, (table, pooled_map) in enumerate(
            zip(attn.relative_position_bias_table_to_windows, pooled)):
        cy, cx = wy // 2**level, wx // 2**level
        side = w + s_r - 1
        for a in range(s_r):
            for b in range(s_r):
                py, px = cy + a - s_r // 2, cx + b - s_r // 2
                if 0 <= py < pooled_map.shape[0] and 0 <= px < pooled_map.shape[1]:
                    keys.append(pooled_map[py, px])
                    biases.append(table[:, (qi - a + s_r - 1) * side + (qj - b + s_r - 1)])
    own = torch.zeros(w * w, dims, dtype=x.dtype)
    own_tokens = x[wy * w:(wy + 1) * w, wx * w:(wx + 1) * w]
    own.view(w, w, dims)[:own_tokens.shape[0], :own_tokens.shape[1]] = own_tokens
    wq, wk, wv = attn.qkv.weight.chunk(3)
    bq, bk, bv = attn.qkv.bias.chunk(3)
    keys, bias = torch.stack(keys), torch.stack(biases, -1)  # (K, C), (nH, w*w, K)
    q = (own @ wq.t() + bq).view(w * w, heads, -1).transpose(0, 1)
    k = (keys @ wk.t() + bk).view(len(keys), heads, -1).transpose(0, 1)
    v = (keys @ wv.t() + bv).view(len(keys), heads, -1).transpose(0, 1)
    weights = (q @ k.transpose(1, 2) * attn.scale + bias).softmax(-1)
    out = (weights @ v).transpose(0, 1).reshape(w * w, dims)
    return attn.proj(out).view(w, w, dims)


def capture_attention(model, x):
    """Run ``model`` on x and return, per block, (block, normed map, output) of its attn."""
    records = []
    hooks = []
    for stage in model.layers:
        for block in stage.blocks:
            hooks.append(block.attn.register_forward_hook(
                lambda m, args, out, block=block: records.append((block, args[0], out))))
    outs = model(x)
    for h in hooks:
        h.remove()
    return records, outs


def check_against_reference(model, size, wrap):
    torch.manual_seed(1)
    records, _ = capture_attention(model, torch.randn(1, 3, *size, dtype=torch.float64))
    checked = 0
    for block, x, out in records:
        x, out = x[0], out[0]
        height, width, _ = x.shape
        w = block.window_size
        pooled = [reference_pool(x, block, k) for k in range(block.pooled_levels)]
        for wy in range(math.ceil(height / w)):
            for wx in range(math.ceil(width / w)):
                ref = reference_window(block.attn, block, x, pooled, wy, wx, wrap)
                got = out[wy * w:(wy + 1) * w, wx * w:(wx + 1) * w]
                ref = ref[:got.shape[0], :got.shape[1]]
                err = (got - ref).abs().max() / ref.abs().max()
                assert err < 1e-5, (block.attn.num_heads, wy, wx, err)
                checked += 1
    return checked


@pytest.mark.parametrize('wrap', [False, True])
@pytest.mark.parametrize('size', [(84, 56), (60, 45)])
def test_attention_matches_slow_reference(size, wrap):
    """Stage maps (21x14, 11x7, 6x4, 3x2) and (15x12, 8x6, 4x3, 2x2): multiples of the
    window and not, several windows (surrounding tokens on) and one (off)."""
    model = FocalTransformer(**TINY, focal_windows=(5, 3, 3, 1),
                             wrap_neighbors=wrap).double().eval()
    with torch.no_grad():
        assert check_against_reference(model, size, wrap) == 6 + 2 + 1 + 1


@pytest.mark.parametrize('pool_method,focal_levels', [
    ('fc', 1), ('fc', 3), ('conv', 2), ('mean', 3), ('max', 2)])
def test_pool_methods_and_levels_match_reference(pool_method, focal_levels):
    model = FocalTransformer(**TINY, focal_windows=(3, 3, 3, 1), pool_method=pool_method,
                             focal_levels=focal_levels).double().eval()
    with torch.no_grad():
        assert check_against_reference(model, (60, 45), wrap=False) == 6 + 2 + 1 + 1


@pytest.mark.parametrize('chunk_bytes, recompute', [(None, True), (1, True), (None, False)])
def test_gradients_match_slow_reference(chunk_bytes, recompute, monkeypatch):
    """Gradients reach every bias table through the fused attention's additive mask, with
    all windows in one chunk or one window per chunk, or through plain autograd."""
    monkeypatch.setitem(COMPUTE_PATHS, 'cpu',
                        ComputePath(recompute=recompute, chunk_bytes=chunk_bytes))
    torch.manual_seed(0)
    model = FocalTransformer(**TINY, focal_windows=(5, 3, 3, 1)).double()
    block = model.layers[0].blocks[0]
    x = torch.randn(1, 17, 25, 32, dtype=torch.float64)
    pooled = [block.pool(x, 0)]
    layout = key_layout(17, 25, 7, 3, 5, 1, False, x.device)
    out = block.attn(x, pooled, layout)[0]
    grad = torch.randn_like(out)
    params = block.attn.position_bias_tables() + [block.attn.qkv.weight]
    got = torch.autograd.grad((out * grad).sum(), params)
    ref_pooled = [reference_pool(x[0], block, 0)]
    loss = 0
    for wy in range(3):
        for wx in range(4):
            ref = reference_window(block.attn, block, x[0], ref_pooled, wy, wx, False)
            tile = grad[wy * 7:(wy + 1) * 7, wx * 7:(wx + 1) * 7]
            loss = loss + (ref[:tile.shape[0], :tile.shape[1]] * tile).sum()
    ref = torch.autograd.grad(loss, params)
    for g, r in zip(got, ref):
        assert r.abs().max() > 0
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-12)


def test_wrap_and_mask_differ_only_at_the_border():
    """Interior windows have the same keys in both modes; border windows do not."""
    torch.manual_seed(0)
    masked = FocalTransformer(**TINY, focal_windows=(3, 3, 3, 1)).eval()
    wrapped = FocalTransformer(**TINY, focal_windows=(3, 3, 3, 1), wrap_neighbors=True).eval()
    wrapped.load_state_dict(masked.state_dict())
    x = torch.randn(1, 3, 112, 112)
    with torch.no_grad():
        (_, _, a), = capture_attention(masked, x)[0][:1]
        (_, _, b), = capture_attention(wrapped, x)[0][:1]
    # stage 0 map 28x28: 4x4 windows; window (1..2, 1..2) rows/cols 7..20 are interior
    torch.testing.assert_close(a[:, 7:21, 7:21], b[:, 7:21, 7:21])
    assert (a[:, :7] - b[:, :7]).abs().max() > 1e-4


# ----------------------------------------------------------------------------- shapes


@pytest.mark.parametrize('name', sorted(VARIANTS))
def test_every_variant_shapes(name):
    torch.manual_seed(0)
    model = FocalTransformer(**VARIANTS[name]).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 33, 50))
    assert [tuple(o.shape) for o in outs] == expected_shapes(
        1, 33, 50, VARIANTS[name]['embed_dims'])
    assert all(torch.isfinite(o).all() and o.is_contiguous() for o in outs)


def test_focal_t_parameter_count_is_the_papers():
    """Focal-T at 224 with the 1000-class head has 28.88M parameters: ours minus norm0..2
    and stage 3's surrounding-token tables (absent when its 7x7 map is one window), plus
    the classifier's norm and head."""
    model = FocalTransformer(**VARIANTS['T'], focal_windows=IMAGENET_WINDOWS)
    count = sum(p.numel() for p in model.parameters())
    count -= sum(p.numel() for n, p in model.named_parameters()
                 if n.startswith('layers.3.') and n.endswith('_to_neighbors'))
    count -= sum(p.numel() for i in range(3) for p in getattr(model, f'norm{i}').parameters())
    count += 768 * 1000 + 1000
    assert round(count / 1e6, 2) == 28.88


def test_detection_size_tiny():
    model = FocalTransformer(embed_dims=16, depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 2),
                             out_indices=(1, 2, 3)).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 800, 1216))
    assert [tuple(o.shape) for o in outs] == expected_shapes(1, 800, 1216, 16, (1, 2, 3))


@pytest.mark.parametrize('options', [
    dict(use_conv_embed=True), dict(use_layerscale=True), dict(expand_size=0),
    dict(window_size=5, expand_size=2, focal_windows=3), dict(qk_scale=0.1)])
def test_options(options):
    model = FocalTransformer(**TINY, **options).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 70, 45))
    assert [tuple(o.shape) for o in outs] == expected_shapes(1, 70, 45, 32)
    keys = model.state_dict().keys()
    assert ('layers.0.blocks.0.gamma_1' in keys) == bool(options.get('use_layerscale'))
    assert ('layers.0.blocks.0.attn.relative_position_bias_table_to_neighbors' in keys) == \
        (options.get('expand_size', 3) > 0)


def test_state_dict_keys_are_the_authors():
    """The attention's and pooling's (the skeleton's: test_backbones.py)."""
    model = FocalTransformer(**TINY, focal_windows=IMAGENET_WINDOWS)
    sd = model.state_dict()
    attn = 'layers.0.blocks.0.attn.'
    assert sd[attn + 'relative_position_bias_table'].shape == (13 * 13, 2)
    assert sd[attn + 'relative_position_bias_table_to_neighbors'].shape == (1, 2, 49, 132)
    assert sd[attn + 'relative_position_bias_table_to_windows.0'].shape == (2, 13 * 13)
    assert sd['layers.3.blocks.0.attn.relative_position_bias_table_to_windows.0'].shape == \
        (4, 7 * 7)
    assert sd['layers.0.blocks.0.pool_layers.0.weight'].shape == (1, 49)
    for key in (attn + 'qkv.weight', attn + 'proj.bias'):
        assert key in sd
    assert not any('index' in k for k in sd if k.startswith('layers.3'))
    assert not any('relative_position_index' in k for k in sd)
    fc = model.layers[0].blocks[0].pool_layers[0]
    assert torch.all(fc.weight == 1 / 49) and torch.all(fc.bias == 0)
    conv = FocalTransformer(**TINY, pool_method='conv').layers[1].blocks[0].pool_layers[0]
    assert conv.weight.shape == (64, 1, 7, 7) and conv.stride == (7, 7)
    assert not FocalTransformer(**TINY, pool_method='mean').layers[0].blocks[0].pool_layers


@pytest.mark.parametrize('kwargs,match', [
    (dict(depths=(1, 1, 1)), 'depths'),
    (dict(num_heads=(3, 2, 2, 4)), 'not divisible'),
    (dict(focal_windows=(15, 13, 9, 8)), 'odd'),
    (dict(focal_windows=(15, 13, 9)), 'focal_windows'),
    (dict(expand_size=7), 'expand_size'),
    (dict(pool_method='avg'), 'pool_method'),
    (dict(focal_levels=0), 'focal_levels'),
    (dict(out_indices=(0, 4)), 'out_indices'),
    (dict(frozen_stages=5), 'frozen_stages'),
    (dict(norm_cfg=dict(type='BN')), 'norm_cfg'),
    (dict(drop_path_rate=1.5), 'drop_path_rate'),
    (dict(pretrain_img_size=(224, )), 'pretrain_img_size'),
    (dict(init_cfg=dict(type='Pretrained')), 'checkpoint'),
    (dict(init_cfg=[dict(type='Pretrained', checkpoint='x.pth')]), 'alone'),
    (dict(qk_scale=-1.), 'qk_scale'),
])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FocalTransformer(**{**TINY, **kwargs})


# ------------------------------------------------------------------------ checkpoints


def released_checkpoint(tmp_path):
    """An ImageNet checkpoint in the authors' layout: focal windows (7, 5, 3, 1), no stage-3
    surrounding-token tables, size-dependent buffers, classifier norm/head, no norm{i}."""
    torch.manual_seed(0)
    model = FocalTransformer(**TINY, focal_windows=IMAGENET_WINDOWS, wrap_neighbors=True)
    sd = {k: v + 0.02 * torch.randn_like(v) for k, v in model.state_dict().items()
          if not k.startswith('norm') and
          not (k.startswith('layers.3.') and k.endswith('_to_neighbors'))}
    for i, blocks in enumerate(TINY['depths']):
        for j in range(blocks):
            prefix = f'layers.{i}.blocks.{j}.attn.'
            sd[prefix + 'relative_position_index'] = torch.randint(0, 169, (49, 49))
            sd[prefix + 'relative_position_index_0'] = torch.randint(0, 100, (49, 49))
            if i < 3:
                sd[prefix + 'valid_ind_rolled'] = torch.arange(132)
    sd['norm.weight'], sd['norm.bias'] = torch.ones(256), torch.zeros(256)
    sd['head.weight'], sd['head.bias'] = torch.randn(1000, 256), torch.zeros(1000)
    path = tmp_path / 'focal-tiny-is224-ws7.pth'
    torch.save({'model': sd}, path)
    return sd, str(path)


def test_checkpoint_tables_upsampled_to_detection_windows(tmp_path):
    sd, path = released_checkpoint(tmp_path)
    model = FocalTransformer(**TINY, init_cfg=dict(type='Pretrained', checkpoint=path))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.init_weights()
    loaded = model.state_dict()
    for i, (s1, s2) in enumerate(zip(IMAGENET_WINDOWS, (15, 13, 9, 7))):
        key = f'layers.{i}.blocks.0.attn.relative_position_bias_table_to_windows.0'
        heads = sd[key].shape[0]
        assert sd[key].shape == (heads, (6 + s1)**2)
        expected = F.interpolate(sd[key].view(1, heads, 6 + s1, 6 + s1), size=(6 + s2, 6 + s2),
                                 mode='bilinear', align_corners=False).view(heads, -1)
        torch.testing.assert_close(loaded[key], expected, rtol=0, atol=0)
    for key, value in loaded.items():
        if key.startswith('layers.3.') and key.endswith('_to_neighbors') or \
                key.startswith('norm'):
            assert torch.equal(value, before[key]), key  # keeps its init
        elif 'to_windows' not in key:
            assert torch.equal(value, sd[key]), key

    report = load_pretrained(FocalTransformer(**TINY), path)
    assert sorted(line.split(':')[0] for line in report.adapted) == [
        f'layers.{i}.blocks.0.attn.relative_position_bias_table_to_windows.0'
        for i in range(4)]
    assert all('bilinearly up-sampled' in line for line in report.adapted)
    assert report.missing == ['layers.3.blocks.0.attn.relative_position_bias_table_to_neighbors',
                              'norm0.weight', 'norm0.bias', 'norm1.weight', 'norm1.bias',
                              'norm2.weight', 'norm2.bias', 'norm3.weight', 'norm3.bias']
    dropped = ' '.join(report.dropped)
    for key in ('layers.0.blocks.0.attn.relative_position_index ',
                'layers.1.blocks.0.attn.relative_position_index_0',
                'layers.2.blocks.0.attn.valid_ind_rolled', 'head.weight', 'norm.bias'):
        assert key in dropped
    assert not report.unexpected


def test_imagenet_checkpoint_at_224_does_not_use_stage3_neighbours(tmp_path):
    """Loaded into the ImageNet structure, the authors' checkpoint lacks stage 3's
    surrounding-token table; at 224 that stage is one 7x7 window and never uses it, so the
    outputs do not depend on its initialisation."""
    _, path = released_checkpoint(tmp_path)
    cfg = dict(**TINY, focal_windows=IMAGENET_WINDOWS, wrap_neighbors=True,
               init_cfg=dict(type='Pretrained', checkpoint=path))
    torch.manual_seed(1)
    a = FocalTransformer(**cfg).eval()
    torch.manual_seed(2)
    b = FocalTransformer(**cfg).eval()
    a.init_weights()
    b.init_weights()
    key = 'layers.3.blocks.0.attn.relative_position_bias_table_to_neighbors'
    assert not torch.equal(a.state_dict()[key], b.state_dict()[key])
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        for oa, ob in zip(a(x), b(x)):
            assert torch.equal(oa, ob)
        # at a larger input stage 3 has several windows and uses it
        x = torch.randn(1, 3, 320, 320)
        assert not torch.equal(a(x)[3], b(x)[3])


# ------------------------------------------------ tracing, compute paths, precisions


TRACED = dict(embed_dims=16, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 2),
              focal_windows=(3, 3, 3, 1), drop_path_rate=0.)


def test_export_equals_eager_and_keeps_the_layout_cache_real():
    """torch.export with a static shape: same outputs; eager calls after the trace still
    run (the cached layout holds no tracer tensors)."""
    torch.manual_seed(0)
    model = FocalTransformer(**TRACED).eval()
    x = torch.randn(1, 3, 60, 90)
    program = torch.export.export(model, (x, ))
    with torch.no_grad():
        eager = model(x)
        for got, ref in zip(program.module()(x), eager):
            torch.testing.assert_close(got, ref)
        y = torch.randn(1, 3, 60, 90)
        for got, ref in zip(program.module()(y), model(y)):
            torch.testing.assert_close(got, ref)


def compiled_step_matches_eager(backend):
    torch._dynamo.reset()  # static shapes: no recompilation from other tests' sizes
    torch.manual_seed(0)
    model = FocalTransformer(**TRACED).train()
    x = torch.randn(2, 3, 44, 60)
    results = []
    for run in (model, torch.compile(model, backend=backend, fullgraph=True)):
        model.zero_grad()
        outs = run(x)
        sum((o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum() for o in outs).backward()
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        results.append(([o.detach() for o in outs], grads))
    (o1, g1), (o2, g2) = results
    assert len(g1) == len(g2) > 0
    for a, b in zip(o1 + g1, o2 + g2):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_compile_training_step_equals_eager():
    """The whole backbone as one graph (fullgraph), forward and backward."""
    compiled_step_matches_eager('aot_eager')


@pytest.mark.slow
@pytest.mark.skipif(TORCH_VERSION < (2, 2), reason='inductor of torch 2.1 fails to generate '
                    'code for the key layout\'s integer arithmetic (aot_eager runs)')
def test_compile_inductor_training_step_equals_eager():
    compiled_step_matches_eager('inductor')


@pytest.mark.parametrize('step', [3, 1, 2])
def test_gathered_attention_gradcheck(step):
    """The hand-written backward against finite differences (float64): repeated and
    masked keys, several windows and heads, windows in one chunk, one per chunk or one
    and two; key slots masked for every window of a chunk left out."""
    torch.manual_seed(0)
    batch, heads, windows, area, keys, dims, tokens = 2, 2, 3, 4, 5, 3, 7
    # in the layout of the qkv layer's output (B, T, 3, nH, d)
    qkv = torch.randn(batch, tokens, 3, heads, dims, dtype=torch.float64)
    qkv = qkv.permute(2, 0, 3, 1, 4).requires_grad_()
    query_index = torch.randint(tokens, (windows * area, ))
    query_index[:2] = 5  # the same token twice (padding positions all read token 0)
    key_index = torch.randint(tokens, (windows * keys, ))
    key_index[:2] = 3  # the same token twice
    key_mask = torch.zeros(windows, keys)
    key_mask[1:, -2:] = float('-inf')
    key_mask[0, 1] = float('-inf')
    chunks = chunk_plan(key_index, key_mask, windows, step)
    assert len(chunks) == -(-windows // step)
    kept = [None if c.slots is None else c.slots.tolist() for c in chunks]
    assert kept == {3: [None], 1: [[0, 2, 3, 4], [0, 1, 2], [0, 1, 2]],
                    2: [[0, 2, 3, 4], [0, 1, 2]]}[step]
    bias = torch.randn(heads, area, keys, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda qkv, bias: GatheredAttention.apply(qkv, query_index, bias, chunks, 0.7),
        (qkv, bias))


def test_chunks_follow_the_rows_of_windows_and_leave_out_missing_keys():
    """Chunks hold whole rows of the window grid or parts of one row; at a 16x50 map (3x8
    windows of 7, pooled 3x8 cells, 5x5 pooled keys around each window) a chunk of the
    first row has no key in the pooled rows above the map, and the chunks' keys are the
    layout's where the mask lets them through."""
    layout = key_layout(16, 50, 7, 3, 5, 1, False, torch.device('cpu'))
    assert layout.row_windows == 8
    assert window_chunks(24, 8, 3) == [slice(r + a, r + b) for r in (0, 8, 16)
                                       for a, b in ((0, 2), (2, 5), (5, 8))]
    assert window_chunks(24, 8, 20) == [slice(0, 16), slice(16, 32)]
    fine = 49 + 4 * (49 - 16)
    for step in (1, 3, 8, 24):
        chunks = chunk_plan(layout.key_index, layout.key_mask, 8, step)
        keys = layout.key_index.view(24, -1)
        covered = []
        for chunk in chunks:
            slots = torch.arange(keys.shape[1]) if chunk.slots is None else chunk.slots
            index = chunk.key_index.view(-1, len(slots))
            exists = layout.key_mask[chunk.windows].eq(0)
            assert (index == keys[chunk.windows][:, slots]).all()
            assert exists[:, slots].any(0).all() and not exists[:, ~torch.isin(
                torch.arange(keys.shape[1]), slots)].any()
            covered += range(24)[chunk.windows]
        assert covered == list(range(24))
        # the first row's chunks: the two pooled rows above the map are left out
        assert all(len(c.slots) <= fine + 15 for c in chunks if c.windows.stop <= 8)


@pytest.mark.parametrize('path', PATHS, ids=str)
def test_compute_path_chooses_the_gathered_attention(path, monkeypatch):
    """With gradients, the attention is GatheredAttention where the path recomputes, plain
    autograd otherwise (the same outputs)."""
    calls = []
    apply = GatheredAttention.apply
    monkeypatch.setattr(GatheredAttention, 'apply',
                        lambda *args: calls.append(1) or apply(*args))
    torch.manual_seed(0)
    model = FocalTransformer(**TINY).train()
    x = torch.randn(1, 3, 45, 33)
    default = model(x)
    calls.clear()
    monkeypatch.setitem(COMPUTE_PATHS, 'cpu', path)
    outs = model(x)
    assert len(calls) == (4 if path.recompute else 0)
    for got, ref in zip(outs, default):
        torch.testing.assert_close(got, ref)


@pytest.mark.parametrize('path', PATHS, ids=str)
@pytest.mark.parametrize('device, dtype', AMP_CASES)
def test_amp_step_close_to_float32(device, dtype, path, monkeypatch):
    """A training step under autocast (bfloat16, and on CUDA float16) on both compute
    paths: finite, and outputs and gradients close to the float32 step's."""
    monkeypatch.setitem(COMPUTE_PATHS, device, path)
    torch.manual_seed(0)
    model = FocalTransformer(**TINY).train().to(device)
    check_amp_step(model, torch.randn(2, 3, 60, 44, device=device), dtype)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
@pytest.mark.parametrize('path', PATHS, ids=str)
def test_cuda_forward_and_gradients_equal_cpu(path, monkeypatch):
    """The same function on CUDA, on both compute paths, as on the CPU (float64): outputs
    and every gradient, every bias table's among them."""
    monkeypatch.setitem(COMPUTE_PATHS, 'cuda', path)
    torch.manual_seed(0)
    model = FocalTransformer(**TINY, focal_windows=(5, 3, 3, 1)).double()
    check_cuda_equals_cpu(model, torch.randn(2, 3, 60, 45, dtype=torch.float64))


@pytest.mark.parametrize('chunk_bytes', [None, 1])
def test_inference_tracing_and_training_attention_agree(chunk_bytes, monkeypatch):
    """The three forwards of the attention: chunked without gradients (whole map or one
    window per chunk), the broadcast-mask ops a tracer records, and the recomputing
    Function with gradients."""
    if chunk_bytes:
        monkeypatch.setitem(COMPUTE_PATHS, 'cpu', ComputePath(chunk_bytes=chunk_bytes))
    torch.manual_seed(0)
    model = FocalTransformer(**TINY, focal_windows=(5, 3, 3, 1)).double().eval()
    x = torch.randn(1, 3, 60, 45, dtype=torch.float64)
    with torch.no_grad():
        inference = model(x)
        traced = torch.jit.trace(model, (x, ), check_trace=False)(x)
    training = model(x)
    for a, b, c in zip(inference, traced, training):
        torch.testing.assert_close(a, c, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(b, c, rtol=1e-10, atol=1e-10)
