"""Reading PaddlePaddle ``.pdparams`` files with numpy alone, running none of their code.

``paddle.save(layer.state_dict(), path)`` writes a plain pickle (protocol 4 by default, 2 and
3 on request) of a flat dict: every parameter and persistable buffer as a numpy array under
its structured name (``layers.0.blocks.0.attn.qkv.weight``), plus
``'StructuredToParameterName@@'``, a table from those names to Paddle's internal ones
(``linear_0.w_0``). With protocol 2 or 3, an array of more than 2**30 - 1 bytes is stored
flattened, in slices ``'<key>@@.<i>'`` that ``'UnpackBigParamInfor@@'`` lists as
``{key: {'OriginShape': shape, 'slices': [names]}}``. Tensors inside other containers
(``paddle.save({'model': layer.state_dict()})``) are pickled as ``(name, array)`` tuples.

A pickle may call any importable function while it is read. :class:`PdparamsUnpickler`
resolves only the globals such a file needs (numpy's array and scalar reconstructors,
``numpy.ndarray``, ``numpy.dtype``, builtin containers and scalars,
``collections.OrderedDict``, and ``_codecs.encode`` for bytes in protocol 2, latin-1 only)
and refuses every other one before anything is called, naming the file and the global.
"""
import codecs
import collections
import io
import math
import os
import pickle
import re
from typing import Any, BinaryIO, Callable, Dict, Tuple, Union

import numpy as np

NAME_TABLE = 'StructuredToParameterName@@'
SLICE_TABLE = 'UnpackBigParamInfor@@'
SLICE = re.compile(r'^(?P<key>.+)@@\.(?P<index>\d+)$')
#: array kinds a weight file may hold: bool, signed and unsigned ints, floats, complex
NUMERIC_KINDS = 'biufc'


class PdparamsError(ValueError):
    """A ``.pdparams`` file that is not what ``paddle.save`` writes of a state dict."""


def _latin1_encode(text: str, encoding: str = 'utf-8') -> bytes:
    """``_codecs.encode`` as protocol 2 pickles bytes: ``encode(text, 'latin1')`` only."""
    if not isinstance(text, str) or encoding not in ('latin1', 'latin-1'):
        raise PdparamsError(f'_codecs.encode called with {type(text).__name__} and encoding '
                            f'{encoding!r}; pickled bytes use latin1 only')
    return codecs.encode(text, 'latin1')


def _allowed_globals() -> Dict[Tuple[str, str], Callable]:
    """(module, name) -> object of every global a ``paddle.save`` pickle may name.

    numpy's reconstructors are taken from numpy's own pickling (``__reduce__``), so that
    files written by numpy 1.x (``numpy.core.multiarray``) and 2.x (``numpy._core``) resolve
    to the functions of the numpy installed, whichever it is.
    """
    reconstruct = np.ndarray.__reduce__(np.empty(0))[0]
    scalar = np.float32(0).__reduce__()[0]
    allowed = {('numpy', 'ndarray'): np.ndarray, ('numpy', 'dtype'): np.dtype,
               ('collections', 'OrderedDict'): collections.OrderedDict,
               ('_codecs', 'encode'): _latin1_encode}
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        allowed[(module, '_reconstruct')] = reconstruct
        allowed[(module, 'scalar')] = scalar
    for module in ('builtins', '__builtin__'):  # __builtin__: protocol 2's name for it
        for builtin in (dict, list, tuple, set, frozenset, bytearray, bytes, str, int, float,
                        complex, bool):
            allowed[(module, builtin.__name__)] = builtin
    return allowed


ALLOWED_GLOBALS = _allowed_globals()


class PdparamsUnpickler(pickle.Unpickler):
    """A pickle reader that resolves only :data:`ALLOWED_GLOBALS`: any other global (a
    function or class the pickle would call) raises :class:`PdparamsError` naming ``name``
    (the file) and the global, before it is imported or called."""

    def __init__(self, file: BinaryIO, name: str):
        super().__init__(file, encoding='latin1')  # as paddle.load reads Python 2 strings
        self.name = name

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise PdparamsError(
                f'{self.name} asks for the global {module}.{name}, which paddle.save never '
                'writes (a .pdparams holds numpy arrays, numpy dtypes, builtin containers and '
                'scalars only): refused, nothing in the file was run. Is it really a '
                'PaddlePaddle weight file, from where you think it is?') from None

    def persistent_load(self, pid: Any) -> Any:
        raise PdparamsError(f'{self.name} holds a persistent id {pid!r}, which paddle.save '
                            'never writes (a torch.save file named .pdparams?)')


def read_pdparams(source: Union[str, os.PathLike, bytes], name: str = None) -> Dict[str, Any]:
    """The state dict of a ``.pdparams`` file: {key: numpy array}.

    ``source`` is a path or the file's bytes (``name`` then names it in errors). The name
    table is dropped, sliced arrays are joined into their shape, ``(name, array)`` tuples
    become their arrays; a dict holding state dicts (``{'model': ...}``) keeps its
    structure. Arrays are as stored: Paddle's ``Linear`` weights are (in, out).

    Raises:
        FileNotFoundError: no such file.
        PdparamsError: not a whole pickle (a download cut short), a global that
            ``paddle.save`` does not write, not a dict, a non-numeric array, or slices that
            do not add up.
    """
    if isinstance(source, (bytes, bytearray)):
        name = name or '<bytes>'
        return _load(io.BytesIO(source), name)
    name = name or os.fspath(source)
    with open(source, 'rb') as f:
        return _load(f, name)


def _load(file: BinaryIO, name: str) -> Dict[str, Any]:
    try:
        obj = PdparamsUnpickler(file, name).load()
    except PdparamsError:
        raise
    except Exception as exc:  # truncated or damaged pickles raise many kinds
        raise PdparamsError(
            f'{name} is not a readable .pdparams file (the pickle paddle.save writes): '
            f'{type(exc).__name__}: {exc}. A download cut short or a damaged file gives this '
            'error: download it again') from exc
    if not isinstance(obj, dict):
        raise PdparamsError(f'{name} holds a {type(obj).__name__}, not the dict paddle.save '
                            'writes of a state dict')
    state = dict(obj)
    state.pop(NAME_TABLE, None)
    _join_slices(state, name)
    return _arrays(state, name, prefix='')


def _join_slices(state: Dict[str, Any], name: str) -> None:
    """Replace the ``@@.i`` slices that :data:`SLICE_TABLE` lists by the arrays they cut:
    the flattened slices, concatenated in order, reshaped to ``OriginShape``."""
    table = state.pop(SLICE_TABLE, {})
    if not isinstance(table, dict):
        raise PdparamsError(f'{name}: {SLICE_TABLE} is a {type(table).__name__}, not a dict')
    for key, entry in table.items():
        try:
            shape, parts = tuple(int(s) for s in entry['OriginShape']), list(entry['slices'])
        except (TypeError, KeyError, ValueError):
            raise PdparamsError(f'{name}: {SLICE_TABLE}[{key!r}] is not '
                                "{'OriginShape': shape, 'slices': [keys]}") from None
        absent = [p for p in parts if p not in state]
        if absent or not parts:
            raise PdparamsError(f'{name}: {key} is cut into the slices {parts}, of which '
                                f'{absent or "none"} are not in the file')
        flat = [state.pop(p) for p in parts]
        if not all(isinstance(p, np.ndarray) for p in flat):
            raise PdparamsError(f'{name}: the slices of {key} are not all numpy arrays')
        joined = np.concatenate([p.reshape(-1) for p in flat])
        if joined.size != math.prod(shape):
            raise PdparamsError(f'{name}: the slices of {key} hold {joined.size} values, its '
                                f'shape {shape} needs {math.prod(shape)}')
        state[key] = joined.reshape(shape)
    stray = [k for k in state if isinstance(k, str) and SLICE.match(k)]
    if stray:
        raise PdparamsError(f'{name}: {stray[:3]} look like slices of large arrays, but '
                            f'{SLICE_TABLE} does not list them')


def _arrays(state: Dict[Any, Any], name: str, prefix: str) -> Dict[str, Any]:
    """Check a (possibly nested) state dict: string keys; values numeric arrays, ``(name,
    array)`` tuples (taken as the array) or nested dicts; other values of a dict that holds
    state dicts (an epoch, a name) are kept as they are."""
    out = {}
    for key, value in state.items():
        if not isinstance(key, str):
            raise PdparamsError(f'{name}: the key {prefix}{key!r} is not a string')
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str) and \
                isinstance(value[1], np.ndarray):
            value = value[1]  # a tensor pickled outside a flat state dict
        if isinstance(value, np.ndarray) and value.dtype.kind not in NUMERIC_KINDS:
            raise PdparamsError(f'{name}: {prefix}{key} is an array of {value.dtype}, not of '
                                'numbers')
        if isinstance(value, dict):
            value = _arrays(value, name, f'{prefix}{key}.')
        out[key] = value
    return out
