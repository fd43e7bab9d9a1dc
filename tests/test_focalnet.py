"""FocalNet backbone: shapes, options, and the function it computes against a reference
(what it shares with the Focal Transformer: test_backbones.py)."""
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from mmfocal.compat import TORCH_VERSION
from mmfocal.models.backbones import focalnet
from mmfocal.models.backbones.base import COMPUTE_PATHS
from mmfocal.models.backbones.focalnet import (FocalContext, FocalNet, aten_conv_backward,
                                               conv_format, depthwise_weight_grad,
                                               forward_conv_backward)

from _helpers import expected_shapes, focalnet_variants
from _steps import AMP_CASES, PATHS, check_amp_step, check_cuda_equals_cpu

#: the authors' hierarchical variants (configs/_base_/models/focalnet.py)
VARIANTS = {name: variant for name, variant in focalnet_variants().items()
            if len(variant['depths']) == 4}
TINY = dict(embed_dims=16, depths=(1, 2, 1, 1), focal_levels=2, focal_windows=3)


@pytest.mark.parametrize('name', [  # FocalNet-H's 0.7 G parameters: the whole suite only
    pytest.param(n, marks=pytest.mark.slow) if n.startswith('h_') else n
    for n in sorted(VARIANTS)])
def test_every_variant_shapes(name):
    torch.manual_seed(0)
    model = FocalNet(**VARIANTS[name]).eval()
    with torch.no_grad():
        for h, w in [(64, 64), (65, 97)]:
            outs = model(torch.randn(1, 3, h, w))
            assert [tuple(o.shape) for o in outs] == expected_shapes(
                1, h, w, VARIANTS[name]['embed_dims'])
            assert all(torch.isfinite(o).all() for o in outs)


@pytest.mark.parametrize('kwargs, match', [
    (dict(focal_levels=(2, 2, 2)), 'focal_levels'),
    (dict(focal_windows=0), 'focal_windows'),
    (dict(depths=()), 'depths'),
    (dict(out_indices=(4, )), 'out_indices'),
    (dict(frozen_stages=5), 'frozen_stages'),
    (dict(drop_path_rate=1.5), 'drop_path_rate'),
])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FocalNet(**{**TINY, **kwargs})


def test_state_dict_keys_are_the_authors():
    """The modulation's (the skeleton's: test_backbones.py)."""
    model = FocalNet(**{**TINY, "focal_levels": 3}, use_postln_in_modulation=True)
    keys = set(model.state_dict())
    for key in ['layers.0.blocks.0.modulation.f.weight',
                'layers.0.blocks.0.modulation.h.weight',
                'layers.0.blocks.0.modulation.proj.bias',
                'layers.0.blocks.0.modulation.focal_layers.2.0.weight',
                'layers.0.blocks.0.modulation.ln.weight']:
        assert key in keys, key
    assert model.state_dict()['layers.0.blocks.0.modulation.h.weight'].shape == (16, 16, 1, 1)
    assert model.state_dict()['layers.0.blocks.0.modulation.focal_layers.2.0.weight'].shape \
        == (16, 1, 7, 7)
    assert not list(model.buffers())


# --------------------------------------------------------------- independent reference


def reference_forward(sd, x, levels, use_conv_embed=False, use_postln=False,
                      normalize_modulator=False, patch_size=4, classify=False):
    """FocalNet in plain functional ops on (B, C, H, W), from an authors' state dict: the
    outputs of the stages that have a ``norm{i}``; with ``classify``, the logits
    (B, classes) of the authors' ImageNet model (the final ``norm``, the average over the
    map, the ``head``)."""
    ln = lambda t, p: F.layer_norm(t, t.shape[-1:], sd[p + '.weight'], sd[p + '.bias'])  # noqa

    def embed(t, p, patch, stem):
        t = F.pad(t, (0, -t.shape[-1] % patch, 0, -t.shape[-2] % patch))
        pad = (2 if stem else 1) if use_conv_embed else 0
        t = F.conv2d(t, sd[p + '.proj.weight'], sd[p + '.proj.bias'], patch, pad)
        return ln(t.permute(0, 2, 3, 1), p + '.norm').permute(0, 3, 1, 2)

    def modulation(t, p):  # t: (B, C, H, W)
        c = t.shape[1]
        bias = sd[p + '.f.bias'][:, None, None]
        y = torch.einsum('bchw,oc->bohw', t, sd[p + '.f.weight']) + bias
        q, ctx, gates = y[:, :c], y[:, c:2 * c], y[:, 2 * c:]
        ctx_all = torch.zeros_like(ctx)
        for k in range(levels):
            w = sd[f'{p}.focal_layers.{k}.0.weight']
            ctx = F.gelu(F.conv2d(ctx, w, padding=w.shape[-1] // 2, groups=c))
            ctx_all += ctx * gates[:, k:k + 1]
        ctx_all += F.gelu(ctx.mean((2, 3), keepdim=True)) * gates[:, levels:]
        if normalize_modulator:
            ctx_all /= levels + 1
        out = q * F.conv2d(ctx_all, sd[p + '.h.weight'], sd[p + '.h.bias'])
        out = out.permute(0, 2, 3, 1)
        if p + '.ln.weight' in sd:
            out = ln(out, p + '.ln')
        return (out @ sd[p + '.proj.weight'].t() + sd[p + '.proj.bias']).permute(0, 3, 1, 2)

    def mlp(t, p):
        t = t.permute(0, 2, 3, 1)
        t = F.gelu(t @ sd[p + '.fc1.weight'].t() + sd[p + '.fc1.bias'])
        return (t @ sd[p + '.fc2.weight'].t() + sd[p + '.fc2.bias']).permute(0, 3, 1, 2)

    def norm(t, p):
        return ln(t.permute(0, 2, 3, 1), p).permute(0, 3, 1, 2)

    def gamma(t, p):
        return t * sd[p][:, None, None] if p in sd else t

    x = embed(x, 'patch_embed', patch_size, True)
    outs = []
    stages = 1 + max(int(k.split('.')[1]) for k in sd if k.startswith('layers.'))
    for i in range(stages):
        j = 0
        while f'layers.{i}.blocks.{j}.norm1.weight' in sd:
            p = f'layers.{i}.blocks.{j}'
            if use_postln:
                x = x + gamma(norm(modulation(x, p + '.modulation'), p + '.norm1'), p + '.gamma_1')
                x = x + gamma(norm(mlp(x, p + '.mlp'), p + '.norm2'), p + '.gamma_2')
            else:
                x = x + gamma(modulation(norm(x, p + '.norm1'), p + '.modulation'), p + '.gamma_1')
                x = x + gamma(mlp(norm(x, p + '.norm2'), p + '.mlp'), p + '.gamma_2')
            j += 1
        outs.append(norm(x, f'norm{i}') if f'norm{i}.weight' in sd else None)
        if i < stages - 1:
            x = embed(x, f'layers.{i}.downsample', 2, False)
    if classify:
        pooled = norm(x, 'norm').mean((2, 3))
        return pooled @ sd['head.weight'].t() + sd['head.bias']
    return outs


@pytest.mark.parametrize('options', [
    dict(),
    dict(use_conv_embed=True, use_postln=True, use_layerscale=True, layerscale_value=0.5,
         use_postln_in_modulation=True, normalize_modulator=True),
])
def test_matches_functional_reference(options):
    torch.manual_seed(0)
    model = FocalNet(**{**TINY, 'focal_levels': 3}, **options).eval()
    for p in model.parameters():  # norms and biases away from their init
        p.data.add_(torch.randn_like(p) * 0.05)
    x = torch.randn(2, 3, 61, 75)
    with torch.no_grad():
        outs = model(x)
        ref = reference_forward(model.state_dict(), x, 3,
                                **{k: v for k, v in options.items()
                                   if k in ('use_conv_embed', 'use_postln',
                                            'normalize_modulator')})
    for o, r in zip(outs, ref):
        torch.testing.assert_close(o, r, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('arch', [
    dict(depths=(3, ), patch_size=16, use_layerscale=True, use_postln=True),  # isotropic
    dict(depths=(2, 3, 2), patch_size=4),  # the tutorial's three stages
    dict(depths=(1, 1, 1, 1, 1), patch_size=2),
])
def test_any_number_of_stages_matches_functional_reference(arch):
    """depths of any length: one stage per entry, widths doubling, every stage's output
    (and out_indices / frozen_stages over the stages) as the reference computes them."""
    torch.manual_seed(0)
    stages = len(arch['depths'])
    model = FocalNet(embed_dims=8, focal_levels=3, focal_windows=3,
                     frozen_stages=stages, **arch).eval()
    for p in model.parameters():
        p.data.add_(torch.randn_like(p) * 0.05)
    assert len(model.layers) == stages and model.out_indices == tuple(range(stages))
    assert all(not p.requires_grad for p in model.parameters())  # every stage frozen
    x = torch.randn(2, 3, 70, 53)
    with torch.no_grad():
        outs = model(x)
        ref = reference_forward(model.state_dict(), x, 3, use_postln=arch.get('use_postln', False),
                                patch_size=arch['patch_size'])
    side = lambda s, i: -(-s // (arch['patch_size'] * 2**i))  # noqa: E731  (ceil)
    assert [tuple(o.shape) for o in outs] == [
        (2, 8 * 2**i, side(70, i), side(53, i)) for i in range(stages)]
    for o, r in zip(outs, ref):
        torch.testing.assert_close(o, r, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('path', PATHS, ids=str)
@pytest.mark.parametrize('options', [
    dict(),
    dict(use_conv_embed=True, use_postln=True, use_layerscale=True, layerscale_value=0.5,
         use_postln_in_modulation=True, normalize_modulator=True),
])
def test_gradients_match_functional_reference(options, path, monkeypatch):
    """Every parameter's and the input's gradient in float64 equal those of the plain-ops
    reference through autograd, on every compute path (the recomputing one has a
    hand-written backward of the focal levels)."""
    monkeypatch.setitem(COMPUTE_PATHS, 'cpu', path)
    torch.manual_seed(0)
    model = FocalNet(**{**TINY, 'focal_levels': 3}, drop_path_rate=0., **options).double()
    for p in model.parameters():
        p.data.add_(torch.randn_like(p) * 0.05)
    x = torch.randn(2, 3, 45, 37, dtype=torch.float64, requires_grad=True)
    weights = [torch.randn(2, 16 * 2**i, 1, 1, dtype=torch.float64) for i in range(4)]
    params = dict(model.named_parameters())
    loss = sum((o * w).sum() for o, w in zip(model(x), weights))
    grads = torch.autograd.grad(loss, [x, *params.values()])
    state = {k: v.detach().requires_grad_() for k, v in model.state_dict().items()}
    ref = reference_forward(state, x, 3, **{k: v for k, v in options.items() if k in (
        'use_conv_embed', 'use_postln', 'normalize_modulator')})
    ref_loss = sum((o * w).sum() for o, w in zip(ref, weights))
    ref_grads = torch.autograd.grad(ref_loss, [x, *(state[k] for k in params)])
    for name, g, r in zip(['input', *params], grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-9, msg=name)


@pytest.mark.parametrize('kernel', [1, 3, 9, 11])
@pytest.mark.parametrize('width', [1, 5, 16, 17, 40])
def test_depthwise_weight_grad_equals_autograd(kernel, width):
    x = torch.randn(2, 6, width, 4, dtype=torch.float64).permute(0, 3, 1, 2)
    weight = torch.randn(4, 1, kernel, kernel, dtype=torch.float64, requires_grad=True)
    y = F.conv2d(x, weight, padding=kernel // 2, groups=4)
    grad = torch.randn_like(y)
    expected, = torch.autograd.grad(y, weight, grad)
    torch.testing.assert_close(depthwise_weight_grad(x, grad, kernel), expected,
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize('backward', [aten_conv_backward, forward_conv_backward])
@pytest.mark.parametrize('kernel', [3, 11])
def test_conv_backward_formulations_equal_autograd(backward, kernel):
    x = torch.randn(2, 9, 7, 5, dtype=torch.float64).permute(0, 3, 1, 2)
    weight = torch.randn(5, 1, kernel, kernel, dtype=torch.float64)
    grad = torch.randn(2, 9, 7, 5, dtype=torch.float64).permute(0, 3, 1, 2)
    x.requires_grad_(), weight.requires_grad_()
    expected = torch.autograd.grad(F.conv2d(x, weight, padding=kernel // 2, groups=5),
                                   (x, weight), grad)
    for got, ref in zip(backward(x.detach(), grad, weight.detach()), expected):
        torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize('backward', [aten_conv_backward, forward_conv_backward])
def test_focal_context_gradcheck(backward, monkeypatch):
    """The hand-written backward of the focal levels, on channels-last views of one
    projection as the model calls it, with either formulation of the convolutions'
    gradients."""
    monkeypatch.setattr(focalnet, 'depthwise_conv_backward', backward)
    torch.manual_seed(0)
    dims = 3
    projection = torch.randn(2, 6, 7, 2 * dims + 3, dtype=torch.float64, requires_grad=True)
    weights = [torch.randn(dims, 1, k, k, dtype=torch.float64, requires_grad=True)
               for k in (3, 5)]

    def focal_context(projection, *weights):
        ctx = projection[..., dims:2 * dims].permute(0, 3, 1, 2)
        gates = projection[..., 2 * dims:].permute(0, 3, 1, 2)
        return FocalContext.apply(ctx, gates, *weights)

    assert torch.autograd.gradcheck(focal_context, (projection, *weights))


@pytest.mark.parametrize('forward', [True, False])
def test_weight_gradient_formulation_follows_the_compute_path(forward, monkeypatch):
    """depthwise_conv_backward takes the formulation ComputePath.forward_weight_grad names
    on the device (the CPU's default: convolution forwards), with the same gradients."""
    calls = []
    for name in ('aten_conv_backward', 'forward_conv_backward'):
        monkeypatch.setattr(focalnet, name, lambda *args, f=getattr(focalnet, name), n=name:
                            calls.append(n) or f(*args))
    monkeypatch.setitem(COMPUTE_PATHS, 'cpu', dataclasses.replace(
        COMPUTE_PATHS['cpu'], forward_weight_grad=forward))
    x, grad = torch.randn(2, 4, 6, 5, dtype=torch.float64), torch.randn(2, 4, 6, 5,
                                                                        dtype=torch.float64)
    weight = torch.randn(4, 1, 3, 3, dtype=torch.float64)
    got = focalnet.depthwise_conv_backward(x, grad, weight)
    assert calls == ['forward_conv_backward' if forward else 'aten_conv_backward']
    for a, b in zip(got, aten_conv_backward(x, grad, weight)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize('path', PATHS, ids=str)
def test_gradients_have_the_strides_of_their_parameters(path, monkeypatch):
    """DDP compares each gradient's strides with its parameter's and warns on a mismatch;
    the focal convolutions read channels-last views, and loading a checkpoint (default
    layout) must not undo the weights' matching layout."""
    monkeypatch.setitem(COMPUTE_PATHS, 'cpu', path)
    model = FocalNet(**TINY, use_conv_embed=True)
    checkpoint = {k: v.clone(memory_format=torch.contiguous_format)
                  for k, v in model.state_dict().items()}
    model.load_state_dict(checkpoint)
    sum(o.sum() for o in model(torch.randn(2, 3, 64, 48))).backward()
    assert [n for n, p in model.named_parameters() if p.grad.stride() != p.stride()] == []


@pytest.mark.slow
def test_torch_export_and_compile_equal_eager():
    """torch.export (static shape) and torch.compile, inference and training, compute what
    eager mode computes (traced, the levels are plain autograd ops)."""
    torch._dynamo.reset()  # static shapes: no recompilation from other tests' sizes
    torch.manual_seed(0)
    model = FocalNet(**TINY, drop_path_rate=0.).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        eager = model(x)
    exported = torch.export.export(model, (x, )).module()
    for out, ref in zip(exported(x), eager):
        torch.testing.assert_close(out, ref)
    compiled = torch.compile(model)
    with torch.no_grad():
        for out, ref in zip(compiled(x), eager):
            torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    model.train()
    grads = []
    for run in (model, compiled):
        model.zero_grad()
        sum(o.square().mean() for o in run(x)).backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for (name, _), got, ref in zip(model.named_parameters(), *grads):
        torch.testing.assert_close(got, ref, rtol=1e-3, atol=1e-6, msg=name)


@pytest.mark.parametrize('path', PATHS, ids=str)
def test_compute_path_chooses_the_focal_context_and_the_layout(path, monkeypatch):
    """With gradients, the focal levels are a FocalContext where the path recomputes, plain
    autograd otherwise (the same outputs); convolutions in the path's layout."""
    calls = []
    apply = FocalContext.apply
    monkeypatch.setattr(FocalContext, 'apply', lambda *args: calls.append(1) or apply(*args))
    torch.manual_seed(0)
    model = FocalNet(**TINY, drop_path_rate=0.)
    x = torch.randn(1, 3, 40, 32)
    default = model(x)
    calls.clear()
    monkeypatch.setitem(COMPUTE_PATHS, 'cpu', path)
    outs = model(x)
    assert len(calls) == (5 if path.recompute else 0)
    assert conv_format(x) == (torch.channels_last if path.channels_last_convs else
                              torch.contiguous_format)
    for got, ref in zip(outs, default):
        torch.testing.assert_close(got, ref)


@pytest.mark.parametrize('path', PATHS, ids=str)
@pytest.mark.parametrize('device, dtype', AMP_CASES)
def test_amp_step_close_to_float32(device, dtype, path, monkeypatch):
    """A training step under autocast (bfloat16, and on CUDA float16) on every compute path:
    finite, and outputs and gradients close to the float32 step's."""
    if device == 'cpu' and not path.channels_last_convs and TORCH_VERSION < (2, 13):
        # the CPU's focal convolutions are channels-last; in (B, C, H, W) torch 2.1's
        # float32 gradients of this model came out wrong (NaN), while float64 ones (above)
        # are right on every torch; torch 2.13 gets float32 right
        pytest.skip('(B, C, H, W) focal convolutions on the CPU in float32 need torch 2.13')
    monkeypatch.setitem(COMPUTE_PATHS, device, path)
    torch.manual_seed(0)
    model = FocalNet(**TINY, drop_path_rate=0.).to(device)
    check_amp_step(model, torch.randn(2, 3, 64, 48, device=device), dtype)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
@pytest.mark.parametrize('path', PATHS, ids=str)
def test_cuda_forward_and_gradients_equal_cpu(path, monkeypatch):
    """The same function on CUDA, on every CUDA compute path, as on the CPU (float64):
    outputs and every gradient."""
    monkeypatch.setitem(COMPUTE_PATHS, 'cuda', path)
    torch.manual_seed(0)
    model = FocalNet(**{**TINY, 'focal_levels': 3}, drop_path_rate=0.).double()
    check_cuda_equals_cpu(model, torch.randn(2, 3, 45, 37, dtype=torch.float64))
