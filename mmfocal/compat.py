"""What differs between the torch versions mmfocal supports (2.1 to 2.13), in one place.

- autocast state per device type (:func:`autocast_enabled`);
- whether the code runs under a tracer (:func:`is_tracing`): ``torch.jit.trace`` (mmengine's
  FLOP counter), the ONNX exporters, ``torch.compile`` and ``torch.export``. The backbones
  then run their plain forward, never an autograd Function, so that every tracing tool sees
  every operation; and the feature sizes a trace records (:func:`feature_size`);
- safe checkpoint loading with an allow-list of globals (:func:`allow_globals`,
  :func:`load_weights`): ``torch.serialization.add_safe_globals`` with
  ``torch.load(weights_only=True)`` where torch has both and reads ``weights_only=True`` by
  default (>= 2.6); before, a restricted unpickler that admits exactly torch's own
  weights-only globals and the allow-listed ones.
"""
import _compat_pickle
import codecs
import collections
import contextlib
import importlib
import io
import pickle
import warnings
from typing import Any, Dict, Iterable, Tuple, Union

import torch

TORCH_VERSION = tuple(int(v) for v in torch.__version__.split('+')[0].split('.')[:2])

# torch >= 2.6 loads with weights_only=True by default and takes (object, name) pairs in
# add_safe_globals; before, torch.load defaults to weights_only=False.
WEIGHTS_ONLY_DEFAULT = TORCH_VERSION >= (2, 6)

# An allow-listed global: an object, or (object, 'module.name') when a checkpoint names
# it otherwise than its own module and qualified name (e.g. numpy 1's numpy.core).
Global = Union[Any, Tuple[Any, str]]


def autocast_enabled(device_type: str) -> bool:
    """Whether autocast is on for ``device_type`` ('cpu', 'cuda', ...)."""
    if TORCH_VERSION >= (2, 4):
        return torch.is_autocast_enabled(device_type)
    if device_type == 'cpu':
        return torch.is_autocast_cpu_enabled()
    return torch.is_autocast_enabled() if device_type == 'cuda' else False


def is_compiling() -> bool:
    """Whether dynamo is tracing the code (``torch.compile``, ``torch.export``)."""
    if TORCH_VERSION >= (2, 3):
        return torch.compiler.is_compiling()
    return torch._dynamo.is_compiling()


def is_tracing() -> bool:
    """Whether a tracer records the code: dynamo (``torch.compile``, ``torch.export``,
    the dynamo ONNX exporter), ``torch.jit.trace`` / scripting (the TorchScript ONNX
    exporter, mmengine's FLOP counter)."""
    if is_compiling():
        return True
    return torch.jit.is_tracing() or torch.jit.is_scripting() or \
        torch.onnx.is_in_onnx_export()


#: A size: an int, or a 0-dim int tensor where a tracer records sizes (the TorchScript ONNX
#: exporter), so that one graph serves every input size.
Size = Union[int, torch.Tensor]


def static_int(size) -> int:
    """A size that is constant in any trace (a parameter's shape) as a Python int: torch's
    jit tracer before 2.2 returns every size as a tensor, which ops refuse as a padding."""
    if isinstance(size, int):
        return size
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        return int(size)


def feature_size(size) -> Size:
    """An input-dependent size for size arithmetic: under the TorchScript ONNX exporter the
    traced 0-dim tensor it gives (one graph then serves every input size); elsewhere an int
    where torch's jit tracer before 2.2 gives a tensor (mmengine's FLOP counter traces the
    one size it runs, as on later torch); anything else (ints, dynamo's symbolic sizes) as
    it is."""
    if isinstance(size, torch.Tensor) and not torch.onnx.is_in_onnx_export():
        return static_int(size)
    return size


# ----------------------------------------------------------------------------- loading

_ALLOWED: Dict[str, Any] = {}


def _full_name(item: Global) -> Tuple[str, Any]:
    if isinstance(item, tuple):
        return item[1], item[0]
    return f'{item.__module__}.{item.__qualname__}', item


def allow_globals(items: Iterable[Global]) -> None:
    """Allow-list ``items`` for :func:`load_weights` and, on torch >= 2.6, for every
    ``torch.load(weights_only=True)`` of the process. Either all are allowed or, when one
    is not a valid global, none."""
    named = dict(_full_name(item) for item in items)
    if WEIGHTS_ONLY_DEFAULT:
        torch.serialization.add_safe_globals([(obj, name) for name, obj in named.items()])
    _ALLOWED.update(named)


def _torch_weights_only_globals() -> Dict[str, Any]:
    """The globals torch's own ``weights_only`` unpickler admits (tensors, storages,
    ``OrderedDict``, ``torch.Size``, ...)."""
    from torch import _weights_only_unpickler
    return dict(_weights_only_unpickler._get_allowed_globals())


class RestrictedUnpickler(pickle.Unpickler):
    """A pickle unpickler that resolves only allow-listed globals: torch's weights-only set,
    what :func:`allow_globals` added and the ``extra`` of :func:`load_weights`; anything
    else raises ``pickle.UnpicklingError`` before it is imported."""

    extra: Dict[str, Any] = {}

    def find_class(self, module: str, name: str):
        # protocol-2 pickles name Python 2's modules (__builtin__.getattr): as pickle does
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        full = f'{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{name}'
        for allowed in (self.extra, _ALLOWED, _torch_weights_only_globals()):
            if full in allowed:
                return allowed[full]
        raise pickle.UnpicklingError(
            f'refusing the global {full} while loading a checkpoint: only tensors, '
            'containers and the allow-listed globals of mmfocal.compat are read')


def _restricted_pickle_module(extra: Dict[str, Any]):
    """A module-like object for ``torch.load(pickle_module=...)``."""
    unpickler = type('Unpickler', (RestrictedUnpickler, ), {'extra': extra})

    class Module:
        Unpickler = unpickler
        __name__ = 'mmfocal.compat.restricted_pickle'

        @staticmethod
        def load(file, **kwargs):
            return unpickler(file, **kwargs).load()

        @staticmethod
        def loads(data, **kwargs):
            return unpickler(io.BytesIO(data), **kwargs).load()

    return Module


def load_weights(path, extra: Iterable[Global] = ()) -> Any:
    """``torch.load`` of ``path`` on the CPU that reads tensors, containers and the
    allow-listed globals (plus ``extra``, for this call only) and refuses anything else,
    on every supported torch."""
    extra = dict(_full_name(item) for item in extra)
    if WEIGHTS_ONLY_DEFAULT:
        scope = torch.serialization.safe_globals(
            [(obj, name) for name, obj in extra.items()]) if extra else contextlib.nullcontext()
        with scope:
            return torch.load(path, map_location='cpu', weights_only=True)
    return torch.load(path, map_location='cpu', weights_only=False,
                      pickle_module=_restricted_pickle_module(extra))


# ----------------------------------------------------------------------------- mmengine


def _statistics_method(owner, name):
    """The one ``getattr`` mmengine checkpoints need: the message hub pickles
    ``HistoryBuffer``'s statistics methods (min, max, current, mean) by reference."""
    from mmengine.logging import HistoryBuffer
    allowed = {'min', 'max', 'current', 'mean', *HistoryBuffer._statistics_methods}
    if owner is HistoryBuffer and name in allowed:
        return getattr(owner, name)
    raise pickle.UnpicklingError(
        f'refusing getattr({owner!r}, {name!r}) while loading a checkpoint: only '
        'HistoryBuffer statistics methods are allowed')


def mmengine_checkpoint_globals() -> list:
    """The globals mmengine writes into its checkpoints beside tensors: the message hub's
    ``HistoryBuffer`` and the numpy arrays and scalars inside it (under numpy 1's and
    numpy 2's module names, so that checkpoints move between the two),
    ``collections.Counter`` (scheduler milestones), ``_codecs.encode`` (bytes) and a
    ``getattr`` restricted to ``HistoryBuffer``'s statistics methods."""
    import numpy as np
    from mmengine.logging import HistoryBuffer
    multiarray = importlib.import_module(
        'numpy._core.multiarray' if int(np.__version__.split('.')[0]) >= 2 else
        'numpy.core.multiarray')
    dtypes = {type(np.dtype(t)) for t in (np.float64, np.float32, np.int64, np.int32, np.bool_)}
    numpy_globals = [(multiarray._reconstruct, f'numpy.{core}.multiarray._reconstruct')
                     for core in ('core', '_core')]
    numpy_globals += [(multiarray.scalar, f'numpy.{core}.multiarray.scalar')
                      for core in ('core', '_core')]
    return [HistoryBuffer, np.ndarray, np.dtype, *numpy_globals, *dtypes, collections.Counter,
            codecs.encode, (_statistics_method, 'builtins.getattr')]


_MMENGINE_ALLOWED = False


def allow_mmengine_checkpoints() -> None:
    """Let mmfocal's readers and, on torch >= 2.6 (whose ``torch.load`` reads
    ``weights_only=True`` by default), every ``torch.load`` of the process read the
    checkpoints mmengine writes (resume state, message hub logs), by allow-listing exactly
    :func:`mmengine_checkpoint_globals` (:func:`allow_globals`).

    ``import mmfocal`` calls it, so every entry point that imports mmfocal through a
    config's ``custom_imports`` (mmdet's and mmseg's inferencers and tools) reads these
    checkpoints. All of the globals are allowed or, on an error, none; calling it again
    does nothing."""
    global _MMENGINE_ALLOWED
    if not _MMENGINE_ALLOWED:
        allow_globals(mmengine_checkpoint_globals())
        _MMENGINE_ALLOWED = True
