"""Adaptive average pooling that exports exactly, for every input size, to ONNX Runtime.

mmdeploy 1.3.1 rewrites ``F.adaptive_avg_pool2d`` as ``F.avg_pool2d`` with kernel and
stride ``int(input size / output size)``, fixed when the graph is traced: right only for
input sizes that divide by the output size, wrong at any other size of a dynamic graph and
an export error when the kernel rounds to 0 (UperNet's pyramid pooling, output sizes 1, 2,
3 and 6, on a last feature map smaller than 6). Here each output cell is an average over
a window of rows and one of columns, as PyTorch defines adaptive pooling, written as two
matrix products whose pooling matrices are tensor arithmetic on the traced input size.
Registered for the onnxruntime backend, it takes precedence over mmdeploy's default rewrite
whenever :mod:`mmfocal.deploy` is imported.
"""
from typing import Tuple

import torch
from mmdeploy.core import FUNCTION_REWRITER
from torch.nn.modules.utils import _pair

from ..compat import Size


def pooling_matrix(size: Size, bins: int, dtype: torch.dtype) -> torch.Tensor:
    """(bins, size): row i averages positions floor(i * size / bins) to
    ceil((i + 1) * size / bins) - 1, the window of adaptive pooling's output i. ``size`` is
    an int or a traced 0-dim tensor."""
    i = torch.arange(bins)
    start = i * size // bins
    end = ((i + 1) * size + bins - 1) // bins
    j = torch.arange(size)
    inside = (j >= start[:, None]) & (j < end[:, None])
    return inside.to(dtype) / (end - start)[:, None].to(dtype)


def adaptive_avg_pool2d(x: torch.Tensor, output_size: Tuple[int, int]) -> torch.Tensor:
    """``F.adaptive_avg_pool2d`` of x (B, C, H, W) -> (B, C, S_h, S_w) by matrix products."""
    out_h, out_w = output_size
    rows = pooling_matrix(x.shape[-2], out_h, x.dtype)
    cols = pooling_matrix(x.shape[-1], out_w, x.dtype)
    return torch.matmul(torch.matmul(rows, x), cols.transpose(0, 1))


@FUNCTION_REWRITER.register_rewriter(
    func_name='torch.nn.functional.adaptive_avg_pool2d', backend='onnxruntime')
def adaptive_avg_pool2d__onnxruntime(input, output_size):
    """mmdeploy's rewrite of ``F.adaptive_avg_pool2d`` for ONNX Runtime; a global pooling
    (1 x 1) stays PyTorch's, which exports as GlobalAveragePool."""
    size = _pair(output_size)
    if None in size:
        raise ValueError('adaptive_avg_pool2d: an output size of None (the input size) '
                         f'cannot be exported, got {output_size!r}')
    if size == (1, 1):
        return FUNCTION_REWRITER.get_context().origin_func(input, output_size)
    return adaptive_avg_pool2d(input, size)
