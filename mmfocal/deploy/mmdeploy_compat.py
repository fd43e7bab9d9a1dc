"""What mmdeploy 1.3.1 (its newest release) needs to export with the torch versions mmfocal
supports, applied at run time by :mod:`mmfocal.deploy` around an export and undone after;
nothing in site-packages is edited and ``import mmfocal`` changes nothing.

Each workaround is applied only where it is needed (checked by feature, not by version
number) and says which versions need it:

- :func:`_legacy_exporter`: torch >= 2.9, whose ``torch.onnx.export`` defaults to the
  torch.export-based exporter;
- :func:`_cast_long`: torch 2.13 (not torch 2.1), which lacks
  ``torch.onnx.symbolic_opset9._cast_Long``;
- :func:`sdpa__onnxruntime`: every torch >= 2.1 (mmdeploy 1.3.1's own rewrite of
  ``F.scaled_dot_product_attention`` is wrong when a ``scale`` is given); registered with
  mmdeploy's rewriters when this module is imported, in effect inside mmdeploy's
  ``RewriterContext`` only.

Installation needs two more steps, described in docs/en/deployment.md: mmdeploy 1.3.1 is
installed with ``--no-deps`` (its wheel requires ``protobuf<=3.20.2``, which makes pip
resolve onnx and onnxruntime to old releases; it runs with current ones), and ``aenum``,
which mmdeploy imports whenever it reads a deploy config but does not declare among its
runtime requirements, is installed beside it.
"""
import contextlib
import functools
import inspect
from typing import Iterator, List, Tuple

import torch
import torch.onnx.symbolic_opset9 as symbolic_opset9
from mmdeploy.core import FUNCTION_REWRITER

ONNX_INT64 = 7  # onnx.TensorProto.INT64


def _legacy_exporter(export):
    """``torch.onnx.export`` with ``dynamo=False`` unless the caller chooses.

    Needed on torch >= 2.9, where the default became ``dynamo=True``: mmdeploy 1.3.1
    calls ``torch.onnx.export`` without the argument, and its rewriters and symbolic
    functions work only under the TorchScript exporter (under dynamo every export fails,
    behind a ``KeyError: -1`` from its rewriter).
    """
    @functools.wraps(export)
    def legacy_export(*args, **kwargs):
        kwargs.setdefault('dynamo', False)
        return export(*args, **kwargs)

    return legacy_export


def _cast_long(g, input, non_blocking):
    """The ONNX ``Cast`` to int64 that ``symbolic_opset9._cast_Long`` emitted.

    Needed on torch 2.13 (present in torch 2.1), which lacks the function: mmdeploy
    1.3.1's RoIAlign symbolic (every two-stage detector, Mask R-CNN among them) imports it.
    """
    return g.op('Cast', input, to_i=ONNX_INT64)


@FUNCTION_REWRITER.register_rewriter(
    func_name='torch.nn.functional.scaled_dot_product_attention', backend='onnxruntime')
def sdpa__onnxruntime(*args, **kwargs):
    """PyTorch's own ``F.scaled_dot_product_attention`` for ONNX Runtime.

    Needed with every torch >= 2.1: mmdeploy 1.3.1 replaces the function (for torch 2.0,
    which could not export it) by one that divides the scores by ``scale``, which torch
    >= 2.1 defines as their multiplier, so any caller that passes ``scale`` (Focal
    Transformer does) gets other attention weights. torch >= 2.1 exports the function
    itself (ONNX opset >= 14).
    """
    return FUNCTION_REWRITER.get_context().origin_func(*args, **kwargs)


def _patches() -> List[Tuple[object, str, object]]:
    """(owner, attribute, replacement) of every workaround this torch needs."""
    patches = []
    if 'dynamo' in inspect.signature(torch.onnx.export).parameters:
        patches.append((torch.onnx, 'export', _legacy_exporter(torch.onnx.export)))
    if not hasattr(symbolic_opset9, '_cast_Long'):
        patches.append((symbolic_opset9, '_cast_Long', _cast_long))
    return patches


_MISSING = object()


@contextlib.contextmanager
def mmdeploy_on_current_torch() -> Iterator[None]:
    """Apply the workarounds this torch needs for mmdeploy 1.3.1, restore on exit."""
    saved = []
    try:
        for owner, name, replacement in _patches():
            saved.append((owner, name, getattr(owner, name, _MISSING)))
            setattr(owner, name, replacement)
        yield
    finally:
        for owner, name, original in reversed(saved):
            if original is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, original)
