"""Mixed precision where the device has it, float32 where it does not.

The FocalNet detection configs train as their authors did, in fp16 mixed precision with
dynamic loss scaling (``optim_wrapper.type='AmpOptimWrapper'``). mmengine's
``AmpOptimWrapper`` refuses to be built without a CUDA, NPU, MLU or MUSA device, so that on a
CPU (the demo, the tests) :func:`amp_fallback` turns it into the plain ``OptimWrapper``:
float32 training with the same optimizer, and a warning that says so.
"""
from typing import Optional

from mmengine.device import get_device
from mmengine.logging import MMLogger
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS

AMP_DEVICES = ('cuda', 'npu', 'mlu', 'musa')
# the configs' mixed-precision wrapper: AmpOptimWrapper where the device has mixed
# precision, else OptimWrapper with a warning, also when mmdet's or mmseg's own tools build it
MIXED_PRECISION = 'MixedPrecisionOptimWrapper'
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
    if kind in ('AmpOptimWrapper', MIXED_PRECISION) and device not in AMP_DEVICES:
        dtype = wrapper.get('dtype') or 'float16'
        wrapper['type'] = 'OptimWrapper'
        drop_amp_arguments(wrapper)
        return fallback_message(dtype, device)
    if kind == 'OptimWrapper':
        drop_amp_arguments(wrapper)
    return None


def drop_amp_arguments(wrapper: dict) -> None:
    for key in AMP_ONLY_KEYS:
        wrapper.pop(key, None)


def fallback_message(dtype: str, device: str) -> str:
    return (f'the config trains in {dtype} mixed precision (AmpOptimWrapper), which needs a '
            f'{"/".join(d.upper() for d in AMP_DEVICES)} device; on {device} it trains in '
            'float32 (OptimWrapper) instead')


def mixed_precision_optim_wrapper(**kwargs):
    """``optim_wrapper.type='MixedPrecisionOptimWrapper'``: an ``AmpOptimWrapper`` with
    ``kwargs`` on a device with mixed precision, else an ``OptimWrapper`` (float32, the
    AmpOptimWrapper-only arguments dropped) and a warning in the run's log, whichever tool
    builds it (mmfocal's, mmdet's or mmseg's ``train.py``)."""
    device = get_device()
    if device in AMP_DEVICES:
        return AmpOptimWrapper(**kwargs)
    MMLogger.get_current_instance().warning(
        fallback_message(kwargs.get('dtype') or 'float16', device))
    drop_amp_arguments(kwargs)
    return OptimWrapper(**kwargs)


OPTIM_WRAPPERS.register_module(name=MIXED_PRECISION, module=mixed_precision_optim_wrapper,
                               force=True)
