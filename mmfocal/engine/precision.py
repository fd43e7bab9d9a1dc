"""Mixed precision where the device has it, float32 where it does not.

The FocalNet detection configs train as their authors did, in fp16 mixed precision with
dynamic loss scaling (``optim_wrapper.type='AmpOptimWrapper'``). mmengine's
``AmpOptimWrapper`` refuses to be built without a CUDA, NPU, MLU or MUSA device, so that on a
CPU (the demo, the tests) :func:`amp_fallback` turns it into the plain ``OptimWrapper``:
float32 training with the same optimizer, and a warning that says so.
"""
from typing import Optional

from mmengine.device import get_device

AMP_DEVICES = ('cuda', 'npu', 'mlu', 'musa')
# arguments of AmpOptimWrapper that OptimWrapper does not take
AMP_ONLY_KEYS = ('loss_scale', 'dtype', 'use_fsdp')


def amp_fallback(cfg, device: Optional[str] = None) -> Optional[str]:
    """Make ``cfg.optim_wrapper`` buildable on ``device`` (default: mmengine's
    ``get_device()``).

    An ``AmpOptimWrapper`` on a device without mixed precision becomes an ``OptimWrapper``
    (float32) and the warning to log is returned; an ``OptimWrapper`` loses the
    AmpOptimWrapper-only arguments (so that ``--cfg-options optim_wrapper.type=OptimWrapper``
    trains a mixed-precision config in float32). Returns None when nothing needs saying.
    """
    wrapper = cfg.get('optim_wrapper')
    if not isinstance(wrapper, dict):
        return None
    kind = wrapper.get('type', 'OptimWrapper')
    device = device or get_device()
    if kind == 'AmpOptimWrapper' and device not in AMP_DEVICES:
        dtype = wrapper.get('dtype') or 'float16'
        wrapper['type'] = 'OptimWrapper'
        for key in AMP_ONLY_KEYS:
            wrapper.pop(key, None)
        return (f'the config trains in {dtype} mixed precision (AmpOptimWrapper), which '
                f'needs a {"/".join(d.upper() for d in AMP_DEVICES)} device; on {device} '
                'it trains in float32 (OptimWrapper) instead')
    if kind == 'OptimWrapper':
        for key in AMP_ONLY_KEYS:
            wrapper.pop(key, None)
    return None
