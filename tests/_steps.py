"""Training steps of a backbone for the tests that compare devices, precisions and compute
paths (:class:`mmfocal.models.backbones.base.ComputePath`)."""
import pytest
import torch

from mmfocal.models.backbones.base import ComputePath

# every compute path: recomputing Functions or plain autograd, convolutions channels-last or not
PATHS = [ComputePath(recompute, channels_last) for recompute in (True, False)
         for channels_last in (True, False)]
# (device, autocast dtype) of the mixed-precision checks; CUDA's are skipped without a device
AMP_CASES = [pytest.param('cpu', torch.bfloat16, id='cpu-bf16')] + [
    pytest.param('cuda', dtype, id=f'cuda-{name}', marks=pytest.mark.skipif(
        not torch.cuda.is_available(), reason='needs a CUDA device'))
    for dtype, name in ((torch.bfloat16, 'bf16'), (torch.float16, 'fp16'))]
# relative error of a mixed-precision step's outputs and gradients to float32's; bfloat16's
# leaves room for gradients that are sums with cancellation (Focal Transformer's pooling
# biases come to 0.11 with some CPUs' bfloat16 kernels)
AMP_TOLERANCE = {torch.bfloat16: 0.15, torch.float16: 0.02}


def training_step(model: torch.nn.Module, x: torch.Tensor, autocast_dtype=None):
    """Outputs and parameter gradients (None for unused parameters) of one step, optionally
    under autocast to ``autocast_dtype``, as CPU copies in x's dtype (copies: moving the
    model moves the tensors behind its gradients). The loss weighs every output element by
    a fixed random number (the outputs are normalised: their mean square would not depend
    on the input)."""
    model.zero_grad()
    with torch.autocast(x.device.type, dtype=autocast_dtype or torch.bfloat16,
                        enabled=autocast_dtype is not None):
        outs = model(x)
    generator = torch.Generator().manual_seed(1)
    sum((o.to(x.dtype) * torch.randn(o.shape, generator=generator, dtype=x.dtype).to(
        x.device)).mean() for o in outs).backward()
    outs = [o.detach().to('cpu', x.dtype, copy=True) for o in outs]
    grads = [None if p.grad is None else p.grad.to('cpu', x.dtype, copy=True)
             for p in model.parameters()]
    return outs, grads


def check_amp_step(model: torch.nn.Module, x: torch.Tensor, dtype: torch.dtype) -> None:
    """A step under autocast to ``dtype`` is finite and close to the float32 step: every
    output and every gradient within :data:`AMP_TOLERANCE` in relative norm."""
    full, low = training_step(model, x), training_step(model, x, dtype)
    names = [f'output {i}' for i in range(len(full[0]))]
    names += [name for name, _ in model.named_parameters()]
    for name, ref, got in zip(names, full[0] + full[1], low[0] + low[1]):
        assert (ref is None) == (got is None), name
        if ref is not None:
            assert torch.isfinite(got).all(), name
            error = ((got - ref).norm() / ref.norm()).item()
            assert error < AMP_TOLERANCE[dtype], (name, error)


def check_cuda_equals_cpu(model: torch.nn.Module, x: torch.Tensor) -> None:
    """The same step (float64, so that only the kernels differ) on CUDA and on the CPU:
    every output and every gradient."""
    cpu = training_step(model.to('cpu'), x)
    cuda = training_step(model.to('cuda'), x.to('cuda'))
    for got, ref in zip(cuda[0] + cuda[1], cpu[0] + cpu[1]):
        assert (got is None) == (ref is None)
        if ref is not None:
            torch.testing.assert_close(got, ref, rtol=1e-7, atol=1e-10)
