"""What both backbones inherit from StagedBackbone (mmfocal/models/backbones/base.py): any
input size, out_indices and their norms, the state dict's skeleton, frozen stages, with_cp,
drop path, autocast and registration; each test runs for both."""
import importlib
from typing import NamedTuple

import pytest
import torch

from mmfocal.models.backbones import FocalNet, FocalTransformer, base
from test_focal_transformer import TINY as FOCAL_T_TINY
from test_focalnet import TINY as FOCALNET_TINY

from _helpers import expected_shapes


class Backbone(NamedTuple):
    cls: type
    tiny: dict  # keyword arguments of a tiny four-stage model, without drop path
    mixer_param: str  # a parameter of the first block's token mixer


BACKBONES = {
    'FocalNet': Backbone(FocalNet, dict(FOCALNET_TINY, drop_path_rate=0.),
                         'layers.0.blocks.0.modulation.focal_layers.0.0.weight'),
    'FocalTransformer': Backbone(
        FocalTransformer, FOCAL_T_TINY,
        'layers.0.blocks.0.attn.relative_position_bias_table_to_windows.0'),
}


def build(name, **kwargs):
    backbone = BACKBONES[name]
    return backbone.cls(**{**backbone.tiny, **kwargs})


def dims(name):
    return BACKBONES[name].tiny['embed_dims']


@pytest.mark.parametrize('size', [(224, 224), (512, 480), (97, 131), (33, 31), (4, 4),
                                  (1, 7)])
@pytest.mark.parametrize('name', BACKBONES)
def test_any_input_size(name, size):
    model = build(name).eval()
    with torch.no_grad():
        outs = model(torch.randn(2, 3, *size))
    assert [tuple(o.shape) for o in outs] == expected_shapes(2, *size, dims(name))
    assert all(torch.isfinite(o).all() for o in outs)
    # Necks and RoI ops index their input as contiguous NCHW memory.
    assert all(o.is_contiguous() for o in outs)


@pytest.mark.parametrize('out_indices', [(0, ), (3, ), (1, 2, 3), (0, 2), (1, 3)])
@pytest.mark.parametrize('name', BACKBONES)
def test_out_indices_and_norms(name, out_indices):
    model = build(name, out_indices=out_indices)
    norms = {n.split('.')[0] for n, _ in model.named_parameters() if n.startswith('norm')}
    assert norms == {f'norm{i}' for i in out_indices}
    outs = model(torch.randn(1, 3, 64, 48))
    assert [tuple(o.shape) for o in outs] == expected_shapes(1, 64, 48, dims(name),
                                                             out_indices)


@pytest.mark.parametrize('out_indices', [(0, 1, 2, 3), (1, 3)])
@pytest.mark.parametrize('name', BACKBONES)
def test_outputs_are_normalised_stage_outputs_before_downsampling(name, out_indices):
    model = build(name, out_indices=out_indices).eval()
    captured = []
    for stage in model.layers:
        stage.blocks[-1].register_forward_hook(lambda m, i, o: captured.append(o))
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 64))
    assert len(outs) == len(out_indices)
    for out, i in zip(outs, out_indices):
        expected = getattr(model, f'norm{i}')(captured[i]).permute(0, 3, 1, 2)
        torch.testing.assert_close(out, expected)


@pytest.mark.parametrize('name', BACKBONES)
def test_state_dict_keys_of_the_shared_skeleton(name):
    """The authors' names of what both build alike: stem, the blocks' norms, MLP and layer
    scale, downsampling between stages (none after the last), one norm per output."""
    model = build(name, use_layerscale=True, out_indices=(1, 3))
    keys = set(model.state_dict())
    params = lambda *names: {f'{n}.{p}' for n in names for p in ('weight', 'bias')}  # noqa: E731
    assert params('patch_embed.proj', 'patch_embed.norm') <= keys
    for i, depth in enumerate(model.depths):
        for j in range(depth):
            block = f'layers.{i}.blocks.{j}'
            assert params(f'{block}.norm1', f'{block}.norm2', f'{block}.mlp.fc1',
                          f'{block}.mlp.fc2') | {f'{block}.gamma_1', f'{block}.gamma_2'} <= keys
        downsample = {k for k in keys if k.startswith(f'layers.{i}.downsample.')}
        last = i == len(model.depths) - 1
        assert downsample == (set() if last else params(f'layers.{i}.downsample.proj',
                                                        f'layers.{i}.downsample.norm'))
    assert {k for k in keys if k.startswith('norm')} == params('norm1', 'norm3')


@pytest.mark.parametrize('frozen', [-1, 0, 1, 2, 3, 4])
@pytest.mark.parametrize('name', BACKBONES)
def test_frozen_stages(name, frozen):
    model = build(name, frozen_stages=frozen)

    def stages(ids):
        return [m for i in ids for m in (model.layers[i], getattr(model, f'norm{i}'))]

    stem = [model.patch_embed]
    frozen_mods = (stem if frozen >= 0 else []) + stages(range(frozen))
    free = ([] if frozen >= 0 else stem) + stages(range(max(frozen, 0), len(model.layers)))
    for train in (False, True):  # at construction, before train(): holds under DDP wrapping
        if train:
            model.train()
        for m in frozen_mods:
            assert not m.training
            assert all(not p.requires_grad for p in m.parameters())
        for m in free:
            assert m.training
            assert all(p.requires_grad for p in m.parameters())
    model.train(False)
    assert not any(m.training for m in model.modules())


@pytest.mark.parametrize('name', BACKBONES)
def test_with_cp_same_outputs_and_gradients(name, monkeypatch):
    """Every block runs under checkpointing; outputs and the input's and every parameter's
    gradients are those without."""
    calls = []
    checkpoint = base.cp.checkpoint
    monkeypatch.setattr(base.cp, 'checkpoint',
                        lambda *args, **kwargs: calls.append(1) or checkpoint(*args, **kwargs))
    torch.manual_seed(0)
    plain = build(name).train()
    ckpt = build(name, with_cp=True).train()
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 60, 44)
    results, counts = [], []
    for model in (plain, ckpt):
        calls.clear()
        inp = x.clone().requires_grad_()
        outs = model(inp)
        counts.append(len(calls))
        sum((o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum() for o in outs).backward()
        results.append((outs, inp.grad, [p.grad for p in model.parameters()]))
    assert counts == [0, sum(ckpt.depths)]
    (o1, g1, p1), (o2, g2, p2) = results
    for a, b in zip(o1, o2):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(g1, g2)
    for (param, _), a, b in zip(plain.named_parameters(), p1, p2):
        torch.testing.assert_close(a, b, msg=param)


@pytest.mark.parametrize('name', BACKBONES)
def test_drop_path_rises_linearly_over_blocks(name):
    model = build(name, depths=(1, 2, 1, 1), drop_path_rate=0.4)
    rates = [getattr(b.drop_path, 'drop_prob', 0.) for s in model.layers for b in s.blocks]
    assert rates == pytest.approx(torch.linspace(0, 0.4, 5).tolist())
    model.train()
    x = torch.randn(8, 3, 32, 32)
    assert not torch.equal(model(x)[3], model(x)[3])  # stochastic in training
    model.eval()
    torch.testing.assert_close(model(x)[3], model(x)[3])


@pytest.mark.parametrize('name', BACKBONES)
def test_autocast_forward_and_backward(name):
    model = build(name).train()
    x = torch.randn(2, 3, 45, 33)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        outs = model(x)
    assert all(o.dtype == torch.bfloat16 and torch.isfinite(o).all() for o in outs)
    sum(o.float().mean() for o in outs).backward()
    grad = model.get_parameter(BACKBONES[name].mixer_param).grad
    assert torch.isfinite(grad).all() and grad.abs().max() > 0
    with torch.no_grad():
        full = model(x)
    for lo, hi in zip(outs, full):
        assert (lo.float() - hi).norm() / hi.norm() < 0.1  # bfloat16 rounding only


@pytest.mark.parametrize('toolbox', ['mmdet', 'mmseg'])
@pytest.mark.parametrize('name', BACKBONES)
def test_builds_by_name(name, toolbox):
    import mmfocal  # noqa: F401  (registers the backbones)
    registry = importlib.import_module(f'{toolbox}.registry').MODELS
    model = registry.build(dict(type=name, **BACKBONES[name].tiny, out_indices=(2, 3)))
    assert isinstance(model, BACKBONES[name].cls)
    with torch.no_grad():
        assert len(model(torch.randn(1, 3, 32, 32))) == 2
