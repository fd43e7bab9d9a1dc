"""Layers both backbones share (mmfocal/models/backbones/base.py)."""
import pytest
import torch

from mmfocal.models.backbones.base import COMPUTE_PATHS, ComputePath, GeluMlp, Mlp, compute_path


def plain_mlp(mlp, x):
    return mlp.fc2(mlp.act(mlp.fc1(x)))


def test_gelu_mlp_gradcheck():
    torch.manual_seed(0)
    args = [torch.randn(*shape, dtype=torch.float64, requires_grad=True)
            for shape in ((2, 3, 5, 6), (24, 6), (24, ), (6, 24), (6, ))]
    assert torch.autograd.gradcheck(GeluMlp.apply, args)


def test_mlp_equals_plain_ops_and_saves_only_its_input_and_pre_activation():
    """Outputs and gradients as fc1 -> GELU -> fc2 through autograd; of the (N, 4C)
    tensors only the pre-activation is kept for backward."""
    torch.manual_seed(0)
    mlp = Mlp(8, 32).double()
    x = torch.randn(2, 5, 7, 8, dtype=torch.float64, requires_grad=True)
    results, saved = [], []
    assert mlp(x).grad_fn.name() == 'GeluMlpBackward'
    for forward in (mlp, lambda x: plain_mlp(mlp, x)):
        numels = []
        with torch.autograd.graph.saved_tensors_hooks(
                lambda t: numels.append(t.numel()) or t, lambda t: t):
            out = forward(x)
        results.append((out, *torch.autograd.grad(out.square().sum(),
                                                  (x, *mlp.parameters()))))
        saved.append(sum(n for n in numels if n == x.numel() * 4))
    for got, ref in zip(*results):
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    assert saved == [x.numel() * 4, x.numel() * 8]


def test_gelu_mlp_in_chunks_of_tokens_equals_plain_ops(monkeypatch):
    """With the tokens in chunks (here 16 rows of 105: the last chunk is short), outputs and
    float64 gradients are plain autograd's, and gradcheck holds."""
    from mmfocal.models.backbones import base
    monkeypatch.setattr(base, 'MIN_CHUNK_ROWS', 1)
    monkeypatch.setitem(COMPUTE_PATHS, 'cpu', ComputePath(chunk_bytes=16 * 32 * 8))
    assert base.row_chunks(105, 32 * 8, torch.device('cpu'))[-1] == slice(96, 112)
    torch.manual_seed(0)
    mlp = Mlp(8, 32).double()
    x = torch.randn(3, 5, 7, 8, dtype=torch.float64, requires_grad=True)
    out = mlp(x)
    assert out.grad_fn.name() == 'GeluMlpBackward'
    ref = plain_mlp(mlp, x)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(out)
    params = (x, *mlp.parameters())
    for got, want in zip(torch.autograd.grad(out, params, grad),
                         torch.autograd.grad(ref, params, grad)):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(GeluMlp.apply, params)


def test_mlp_with_dropout_or_autocast_uses_plain_ops():
    torch.manual_seed(0)
    mlp = Mlp(8, 32, drop=0.5)
    x = torch.randn(4, 8)
    out = mlp(x)
    assert out.grad_fn.name() != 'GeluMlpBackward'
    torch.manual_seed(1)
    first = mlp(x)
    torch.manual_seed(1)
    torch.testing.assert_close(mlp(x), first)  # dropout draws from the generator
    assert not torch.equal(mlp.eval()(x), first)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert mlp.train(False)(x).dtype == torch.bfloat16


def test_compute_paths_by_device_type():
    """Recomputation everywhere; focal convolutions channels-last on the CPU only; device
    types without an entry take CUDA's path."""
    assert compute_path(torch.device('cpu')) == ComputePath(
        recompute=True, channels_last_convs=True, chunk_bytes=2**22, forward_weight_grad=True)
    assert compute_path(torch.device('cuda')) == ComputePath(
        recompute=True, channels_last_convs=False, chunk_bytes=None, forward_weight_grad=False)
    assert compute_path(torch.device('meta')) is COMPUTE_PATHS['cuda']


def test_mlp_runs_plain_autograd_where_the_path_does_not_recompute(monkeypatch):
    torch.manual_seed(0)
    mlp = Mlp(8, 32).double()
    x = torch.randn(3, 8, dtype=torch.float64, requires_grad=True)
    fused = mlp(x)
    monkeypatch.setitem(COMPUTE_PATHS, 'cpu', ComputePath(recompute=False))
    plain = mlp(x)
    assert fused.grad_fn.name() == 'GeluMlpBackward'
    assert plain.grad_fn.name() != 'GeluMlpBackward'
    torch.testing.assert_close(plain, fused, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('stride, in_channels', [(4, 3), (2, 5)])
def test_patch_linear_equals_the_convolution_with_gradients(stride, in_channels):
    """With gradients, a non-overlapping PatchEmbed runs as a linear layer over its
    patches: outputs and float64 gradients (input, weight, bias) are the convolution's."""
    from mmfocal.models.backbones.base import PatchEmbed
    torch.manual_seed(0)
    embed = PatchEmbed(in_channels, 6, stride=stride, use_conv_embed=False,
                       is_stem=stride == 4, norm_cfg=dict(type='LN')).double()
    x = torch.randn(2, in_channels, 9, 11, dtype=torch.float64, requires_grad=True)
    out = embed(x)
    params = [x, embed.proj.weight, embed.proj.bias]
    grads = torch.autograd.grad(out.square().sum(), params)
    padded = torch.nn.functional.pad(x, (0, -11 % stride, 0, -9 % stride))
    ref = embed.norm(embed.proj(padded).permute(0, 2, 3, 1))
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    for got, expected in zip(grads, torch.autograd.grad(ref.square().sum(), params)):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
