"""Checkpoint adaptation: the one place where released weights meet mmfocal models.

Used by both backbones (``init_cfg=dict(type='Pretrained', checkpoint=...)``) and by
``tools/model_converters``. It reads a checkpoint in any of the known layouts (the
authors', another program's, wrapped or prefixed, whole detectors), brings it to the
authors' key layout, and adapts what the papers adapt for high resolution.

What is known of a backbone's keys is what its class declares in ``checkpoint_rules``
(a :class:`CheckpointRules`): the first names of its keys, the classification-only keys
and size-dependent buffers of released checkpoints (dropped), the :class:`Adaptation` s of
tensors whose shape may differ (built from this module's kernel padding, focal-level
growth and bias-table up-sampling), the tensors a released checkpoint may lack (expected
gaps) and other programs' :class:`WeightLayout` s (timm's, Hugging Face's, and Paddle's,
recognised by the ``.pdparams`` file it was read from, never by its keys). This module
applies them and names no backbone; where no model is given (the converter without a
config), the rules of every registered backbone apply.

Everything else must match exactly; what cannot be adapted raises :class:`CheckpointError`,
and so do a checkpoint holding a non-finite value, one that matches no tensor of the model
and one that leaves a weight of the stem or of the stages at its initialisation (beyond the
expected gaps of :func:`expected_gap`). Every adapted, dropped, missing and unexpected key is
reported, with the number of the model's tensors loaded.
"""
import io
import logging
import math
import os
import os.path as osp
import re
from dataclasses import dataclass, field, fields
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.logging import print_log

from ..compat import allow_mmengine_checkpoints, load_weights  # noqa: F401
from .pdparams import PdparamsError, read_pdparams

StateDict = Dict[str, torch.Tensor]

WRAPPER_KEYS = ('state_dict', 'model', 'teacher')
KEY_PREFIXES = ('module.', 'backbone.', 'visual.', 'encoder.')
#: a rule's function of (key, authors'-layout checkpoint, model state dict)
GapRule = Callable[[str, StateDict, StateDict], bool]


@dataclass(frozen=True)
class Adaptation:
    """A backbone tensor whose shape may differ from the checkpoint's, and how it adapts.

    Attributes:
        key (str): regular expression searched in the key.
        what (str): what is adapted, plural ('focal kernels'), for error messages.
        fits: ``fits(value, shape)``, whether the checkpoint's value can take the model's
            shape this way.
        adapt: ``adapt(value, shape, key)`` -> the model's tensor.
        how: ``how(value, shape)`` -> what the report says was done ('zero-padded ...').
    """
    key: str
    what: str
    fits: Callable[[torch.Tensor, torch.Size], bool]
    adapt: Callable[[torch.Tensor, torch.Size, str], torch.Tensor]
    how: Callable[[torch.Tensor, torch.Size], str]


#: ``read_checkpoint`` marks a state dict read from a file of another program whose
#: tensors are laid out otherwise (Paddle's ``.pdparams``) with the key ``FORMAT_MARK +
#: format`` (an empty tensor): the :class:`WeightLayout` of that ``file_format`` is
#: recognised by the mark alone, never from the keys or the shapes
FORMAT_MARK = 'file-format@@'
PADDLE = 'paddle'


def file_formats(state_dict: StateDict) -> List[str]:
    """The file formats whose marks (:data:`FORMAT_MARK`) ``state_dict`` carries."""
    return [k[len(FORMAT_MARK):] for k in state_dict if k.startswith(FORMAT_MARK)]


@dataclass(frozen=True)
class WeightLayout:
    """Another program's key layout of a backbone's weights, and its way to the authors'.

    Attributes:
        name (str): e.g. 'timm'.
        detect (str): regular expression; a checkpoint with a key matching it (from the
            start) is in this layout.
        roots (tuple[str]): the first names of its keys (regular expressions), where the
            stripping of wrapper prefixes stops.
        renames (tuple): (pattern, replacement) pairs of :func:`re.sub`, applied to every
            key in order.
        flatten (str, optional): renamed keys matching it (searched) hold 1x1 convolution
            weights (out, in, 1, 1) of the model's linear layers: flattened to (out, in).
        file_format (str, optional): the layout of the files of this format (e.g. 'paddle'),
            recognised by the mark ``read_checkpoint`` gives what it read from such a file
            (:data:`FORMAT_MARK`), not by ``detect``.
        transpose (str, optional): keys matching it (searched, before the renames) whose
            tensor is 2-D hold linear weights stored (in, out): transposed to (out, in).
    """
    name: str
    detect: str = ''
    roots: Tuple[str, ...] = ()
    renames: Tuple[Tuple[str, Union[str, Callable]], ...] = ()
    flatten: Optional[str] = None
    file_format: Optional[str] = None
    transpose: Optional[str] = None

    def transposes(self, key: str, value: torch.Tensor) -> bool:
        """Whether ``key`` holds an (in, out) linear weight that :meth:`to_authors`
        transposes."""
        return self.transpose is not None and value.dim() == 2 and \
            re.search(self.transpose, key) is not None

    def to_authors(self, state_dict: StateDict) -> StateDict:
        out = {}
        for key, value in state_dict.items():
            if key.startswith(FORMAT_MARK):
                continue
            if self.transposes(key, value):
                value = value.t().contiguous()
            for pattern, repl in self.renames:
                key = re.sub(pattern, repl, key)
            if self.flatten and re.search(self.flatten, key):
                value = value.flatten(1)
            out[key] = value
        return out


@dataclass(frozen=True)
class CheckpointRules:
    """What a backbone class declares of its own checkpoint keys, as ``checkpoint_rules``;
    rules add up (``a + b``), as a backbone's extend those of its base class.

    Attributes:
        roots (tuple[str]): the first names of its keys in the authors' layout (regular
            expressions), where the stripping of wrapper prefixes stops.
        classifier (tuple[str]): keys of the classification model (matched from the
            start), dropped.
        recomputed (tuple[str]): buffers of released checkpoints that depend on the input
            size (searched), dropped: the model computes its own.
        adaptations (tuple[Adaptation]): tensors whose shape may differ.
        expected_gaps (tuple): functions ``gap(key, state_dict, target)``: whether the model
            tensor ``key`` may keep its initialisation when the authors'-layout
            ``state_dict`` lacks it (``target`` is the model's state dict).
        layouts (tuple[WeightLayout]): other programs' layouts of its weights.
    """
    roots: Tuple[str, ...] = ()
    classifier: Tuple[str, ...] = ()
    recomputed: Tuple[str, ...] = ()
    adaptations: Tuple[Adaptation, ...] = ()
    expected_gaps: Tuple[GapRule, ...] = ()
    layouts: Tuple[WeightLayout, ...] = ()

    def __add__(self, other: 'CheckpointRules') -> 'CheckpointRules':
        return CheckpointRules(**{f.name: tuple(dict.fromkeys(
            getattr(self, f.name) + getattr(other, f.name))) for f in fields(self)})

    def dropped(self, key: str) -> Optional[str]:
        """Why a checkpoint key the model lacks is dropped, or None (unexpected)."""
        if any(re.match(p, key) for p in self.classifier):
            return 'classification only'
        if any(re.search(p, key) for p in self.recomputed):
            return 'size-dependent buffer, recomputed'
        return None


def known_rules() -> CheckpointRules:
    """The rules of every registered backbone that declares some, for a checkpoint read
    without a model."""
    from ..registry import registered_backbones
    return sum((cls.checkpoint_rules for cls in registered_backbones()
                if isinstance(getattr(cls, 'checkpoint_rules', None), CheckpointRules)),
               CheckpointRules())


def or_known(rules: Optional[CheckpointRules]) -> CheckpointRules:
    """``rules``, or :func:`known_rules` when None."""
    return rules if rules is not None else known_rules()


def rules_of(model: Optional[torch.nn.Module]) -> CheckpointRules:
    """``model``'s class's ``checkpoint_rules``; without a model (or rules), known_rules()."""
    return or_known(getattr(type(model), 'checkpoint_rules', None) if model is not None else None)


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, adapted to the model or fully loaded into it."""


@dataclass
class LoadReport:
    """What happened to each key while loading a checkpoint."""
    adapted: List[str] = field(default_factory=list)
    dropped: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)

    def lines(self) -> List[str]:
        out = [f'adapted {line}' for line in self.adapted]
        out += [f'dropped {line}' for line in self.dropped]
        out += [f'missing in checkpoint (keeps init): {k}' for k in self.missing]
        out += [f'unexpected in checkpoint (ignored): {k}' for k in self.unexpected]
        return out

    def log(self, logger='current') -> None:
        for line in self.lines():
            print_log(line, logger=logger)


# ----------------------------------------------------------------------------- reading


# hf-hub:ORG/REPO[/FILE][@REVISION] (the prefix as timm and open_clip use it)
HF_HUB = re.compile(r'^hf-hub:(?P<repo>[\w.-]+/[\w.-]+)(?:/(?P<file>[^@]+))?(?:@(?P<rev>.+))?$')
HUB_FILES = ('model.safetensors', 'pytorch_model.bin')  # tried in this order
HUB_EXTRA = "pip install '.[hub]' in mmfocal's clone (or pip install huggingface_hub)"
WHERE_WEIGHTS_LIVE = ('docs/en/checkpoints.md ("Where the weights live") says where each '
                      "variant's weights can be downloaded, and which were never published")


def read_checkpoint(path: str, extra: Sequence = ()) -> dict:
    """Load a weight file: ``.safetensors`` with safetensors, anything else with
    :func:`mmfocal.compat.load_weights` (tensors, containers and allow-listed globals
    only, plus ``extra`` for this call); checkpoints written by mmengine (e.g. a trained
    detector's) are read through :func:`allow_mmengine_checkpoints`, which
    ``import mmfocal`` has called.

    ``path`` may also be ``http(s)://...`` (downloaded once into torch hub's cache, see
    :func:`download`), ``hf-hub:ORG/REPO[/FILE][@REVISION]`` (see :func:`hub_file`) or a
    URL of another mmengine file backend.

    A ``.pdparams`` file (PaddlePaddle's) is read by :func:`mmfocal.models.pdparams.
    read_pdparams`, which runs none of its code; every state dict in it carries the mark
    of a Paddle file (:data:`FORMAT_MARK`), by which :func:`to_authors_layout` applies the
    Paddle layout a backbone declares.
    """
    path = str(path)
    if re.match(r'^https?://', path):  # the URL's name, not the download's, tells the format
        return download(path, lambda local: _read_file(local, extra, name=path))
    if path.startswith('hf-hub:'):
        path = hub_file(path)
    elif re.match(r'^\w+://', path):  # other mmengine file backends (s3, ...)
        from mmengine.fileio import get
        if is_pdparams(path):
            return _read_paddle(get(path), path)
        return load_weights(io.BytesIO(get(path)), extra)
    return _read_file(path, extra)


def is_pdparams(name: str) -> bool:
    """Whether the path or URL ``name`` is a Paddle weight file (``.pdparams``)."""
    return re.search(r'\.pdparams$', re.sub(r'[?#].*$', '', str(name))) is not None


def _read_file(path: str, extra: Sequence = (), name: Optional[str] = None) -> dict:
    """Read the local file ``path`` by the suffix of ``name`` (default ``path``)."""
    name = str(name or path)
    if is_pdparams(name):
        return _read_paddle(path, name)
    if name.endswith('.safetensors'):
        return _read_safetensors(path)
    try:
        return load_weights(path, extra)
    except FileNotFoundError:
        raise CheckpointError(
            f'checkpoint file not found: {path}. {WHERE_WEIGHTS_LIVE}') from None
    except Exception as exc:  # pickle errors, zip errors, unsafe globals
        raise CheckpointError(
            f'{path} is not a weight file torch.load(weights_only=True) can read '
            f'(a state dict, possibly under {WRAPPER_KEYS}): {exc}') from exc


def download(url: str, read, timeout: float = 60.) -> dict:
    """Download ``url`` once into ``torch.hub.get_dir()/checkpoints`` and return
    ``read(local_path)``.

    The file is written under a temporary name and moves into the cache only once it is
    whole (as many bytes as the server's Content-Length, the SHA-256 prefix of a
    ``NAME-<hex>.ext`` file name, and ``read`` succeeds on it): a download cut short, a
    damaged file or an HTTP error raises :class:`CheckpointError` and leaves nothing in the
    cache that a later run would take for the checkpoint.
    """
    import hashlib
    import http.client
    import urllib.error
    import urllib.parse
    import urllib.request
    name = osp.basename(urllib.parse.urlparse(url).path)
    if not name:
        raise CheckpointError(f'{url} names no file')
    cached = osp.join(torch.hub.get_dir(), 'checkpoints', name)
    if osp.exists(cached):
        return read(cached)
    os.makedirs(osp.dirname(cached), exist_ok=True)
    partial = f'{cached}.{os.getpid()}.partial'
    sha256, size = hashlib.sha256(), 0
    try:
        try:
            request = urllib.request.Request(url, headers={'User-Agent': 'mmfocal'})
            with urllib.request.urlopen(request, timeout=timeout) as response, \
                    open(partial, 'wb') as f:
                expected = response.headers.get('Content-Length')
                while True:
                    chunk = response.read(1 << 20)
                    if not chunk:
                        break
                    f.write(chunk)
                    sha256.update(chunk)
                    size += len(chunk)
        except (OSError, http.client.HTTPException) as exc:  # HTTP errors, refused, timeouts
            raise CheckpointError(f'downloading {url} failed: {exc}') from exc
        if expected is not None and size != int(expected):
            raise CheckpointError(f'downloading {url} was cut short: {size} of {expected} '
                                  'bytes arrived; nothing was cached, run again')
        prefix = re.search(r'-([a-f0-9]{8,64})\.\w+$', name)
        if prefix and not sha256.hexdigest().startswith(prefix.group(1)):
            raise CheckpointError(f'{url}: the SHA-256 of the download, {sha256.hexdigest()}, '
                                  f'does not start with the {prefix.group(1)} of its name')
        try:
            checkpoint = read(partial)
        except CheckpointError as exc:
            raise CheckpointError(f'{url} downloaded ({size} bytes) but is not a readable '
                                  f'checkpoint, so it was not cached: {exc}') from exc
        os.replace(partial, cached)
        return checkpoint
    finally:
        if osp.exists(partial):
            os.remove(partial)


def hub_file(spec: str) -> str:
    """The local path of ``hf-hub:ORG/REPO[/FILE][@REVISION]``, through
    ``huggingface_hub.hf_hub_download`` and so through its cache, offline mode
    (``HF_HUB_OFFLINE``), endpoint (``HF_ENDPOINT``) and token (``HF_TOKEN``) settings.

    Without ``FILE``, the repository's ``model.safetensors`` is taken, else its
    ``pytorch_model.bin``. ``REVISION`` is a branch, a tag or (best) a commit hash.
    """
    match = HF_HUB.match(spec)
    if match is None:
        raise CheckpointError(f'{spec!r}: a hub checkpoint is hf-hub:ORG/REPO, optionally '
                              'followed by /FILE and @REVISION')
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.utils import EntryNotFoundError
    except ImportError:
        raise CheckpointError(f'{spec} needs the huggingface_hub package: {HUB_EXTRA}') \
            from None
    repo, revision = match.group('repo'), match.group('rev')
    names = [match.group('file')] if match.group('file') else list(HUB_FILES)
    not_found = []
    for name in names:
        try:
            return hf_hub_download(repo, name, revision=revision)
        except EntryNotFoundError as exc:  # not in the repository, or offline and not cached
            not_found.append(f'{name}: {exc}')
        except (OSError, ValueError) as exc:  # unknown repo or revision, HTTP, connection
            raise CheckpointError(f'{spec}: {type(exc).__name__}: {exc}') from exc
    raise CheckpointError(f'{spec}: no file {" or ".join(names)} at revision '
                          f'{revision or "main"} (offline and not cached, or not in the '
                          f'repository): {"; ".join(not_found)}')


def _read_safetensors(path: str) -> dict:
    try:
        from safetensors import SafetensorError
        from safetensors.torch import load_file
    except ImportError:
        raise CheckpointError(f'reading {path} needs the safetensors package: '
                              'pip install safetensors') from None
    try:
        return load_file(path, device='cpu')
    except FileNotFoundError:
        raise CheckpointError(
            f'checkpoint file not found: {path}. {WHERE_WEIGHTS_LIVE}') from None
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f'{path} is not a readable safetensors file: {exc}') from exc


def _read_paddle(source: Union[str, bytes], name: str) -> dict:
    """A ``.pdparams`` file (its path or bytes) read by :mod:`mmfocal.models.pdparams`
    (numpy only, no code of the file run): its arrays as tensors, every state dict in it
    marked (:data:`FORMAT_MARK`) as read from a Paddle file, so that the layout the
    backbones declare for Paddle files applies (Linear weights stored (in, out))."""
    try:
        content = read_pdparams(source, name)
    except FileNotFoundError:
        raise CheckpointError(
            f'checkpoint file not found: {name}. {WHERE_WEIGHTS_LIVE}') from None
    except PdparamsError as exc:
        raise CheckpointError(str(exc)) from exc
    return _paddle_tensors(content)


def _paddle_tensors(obj):
    """numpy arrays (any byte order, read-only or not) -> tensors; a dict of arrays (a
    state dict) also gets the mark of a Paddle file."""
    if isinstance(obj, np.ndarray):
        native = obj.dtype.newbyteorder('=')
        return torch.from_numpy(np.array(obj, dtype=native, order='C', copy=True))
    if not isinstance(obj, dict):
        return obj
    out = {k: _paddle_tensors(v) for k, v in obj.items()}
    if out and all(isinstance(v, np.ndarray) for v in obj.values()):
        out[FORMAT_MARK + PADDLE] = torch.empty(0)
    return out


def unwrap(checkpoint, prefix: Optional[str] = None, report: Optional[LoadReport] = None,
           rules: Optional[CheckpointRules] = None) -> StateDict:
    """Return the backbone's state dict from a loaded checkpoint.

    Args:
        checkpoint: a state dict, or a dict holding one under ``state_dict``,
            ``model`` or ``teacher``.
        prefix: keep only keys under this prefix (stripped). By default, when the
            checkpoint is a whole model with keys under ``backbone.``, only those are
            kept; other prefixes in ``KEY_PREFIXES`` are stripped from a key until it
            starts like a key of a known layout (the roots of ``rules``).
        report: receives one line per group of dropped keys.
        rules: the model's :class:`CheckpointRules` (default: :func:`known_rules`).

    Raises:
        CheckpointError: not a dict of tensors, or a floating-point tensor holding a NaN
            or an infinity (named).
    """
    report = report if report is not None else LoadReport()
    roots = layout_roots(or_known(rules))
    while isinstance(checkpoint, dict):
        wrapper = next((k for k in WRAPPER_KEYS if k in checkpoint), None)
        if wrapper is None or isinstance(checkpoint[wrapper], torch.Tensor):
            break
        checkpoint = checkpoint[wrapper]
    if not isinstance(checkpoint, dict) or not checkpoint or not all(
            isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise CheckpointError(
            'not a checkpoint: expected a dict of tensors, possibly under one of '
            f'{WRAPPER_KEYS}, got {type(checkpoint).__name__}')
    check_finite(checkpoint)
    state_dict = {_strip(k, ('module.', ), roots): v for k, v in checkpoint.items()}
    if prefix is None and any(k.startswith('backbone.') for k in state_dict):
        prefix = 'backbone.'
    if prefix:
        kept = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        if not kept:
            raise CheckpointError(f'no key of the checkpoint starts with {prefix!r}')
        _report_groups(report, [k for k in state_dict if not k.startswith(prefix) and
                                not k.startswith(FORMAT_MARK)], f'(outside {prefix!r})')
        marks = {k: v for k, v in state_dict.items() if k.startswith(FORMAT_MARK)}
        state_dict = {**kept, **marks}  # the file's format stays known
    return {_strip(k, KEY_PREFIXES, roots): v for k, v in state_dict.items()}


def layout_roots(rules: CheckpointRules) -> 're.Pattern':
    """The first names of the keys of every layout ``rules`` know, as one pattern: wrapper
    prefixes are stripped up to them, so that Hugging Face's ``encoder.stages`` is not
    mistaken for an ``encoder.`` wrapper."""
    roots = rules.roots + tuple(r for layout in rules.layouts for r in layout.roots)
    return re.compile(rf'^({"|".join(roots)})\.')


def _strip(key: str, prefixes, roots: 're.Pattern') -> str:
    """Remove leading ``prefixes`` from ``key``, stopping where a known layout begins."""
    while not roots.match(key):
        prefix = next((p for p in prefixes if key.startswith(p)), None)
        if prefix is None:
            break
        key = key[len(prefix):]
    return key


def check_finite(state_dict: StateDict) -> None:
    """Refuse a checkpoint with a NaN or an infinity, naming the first such tensor."""
    for key, value in state_dict.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            bad = (~torch.isfinite(value)).sum().item()
            raise CheckpointError(
                f'{key} holds {bad} non-finite values (NaN or inf) of {value.numel()}: '
                'the checkpoint is damaged or was saved from a diverged run')


def _report_groups(report: LoadReport, keys: List[str], why: str) -> None:
    groups: Dict[str, int] = {}
    for k in keys:
        groups[k.split('.')[0]] = groups.get(k.split('.')[0], 0) + 1
    for head, count in groups.items():
        report.dropped.append(f'{head}.* ({count} keys) {why}')


# ------------------------------------------------------------------- other key layouts


def detect_layout(state_dict: StateDict, rules: Optional[CheckpointRules] = None) -> str:
    """The name of the :class:`WeightLayout` of ``rules`` (default :func:`known_rules`)
    that a key of ``state_dict`` marks (or, for another program's file, the format
    :func:`read_checkpoint` marked it with), or 'authors' (also mmdet 2's and mmfocal's
    own)."""
    layout = _layout(state_dict, or_known(rules))
    return layout.name if layout is not None else 'authors'


def _layout(state_dict: StateDict, rules: CheckpointRules) -> Optional[WeightLayout]:
    formats = file_formats(state_dict)
    if formats:  # read from another program's file: its layout, whatever the keys say
        layout = next((layout for layout in rules.layouts
                       if layout.file_format in formats), None)
        if layout is None:
            known = [layout.file_format for layout in rules.layouts if layout.file_format]
            raise CheckpointError(
                f'the checkpoint was read from a {" and ".join(formats)} file, whose tensors '
                'are laid out as that program stores them, and the model declares no such '
                f'layout (it knows the files of: {", ".join(known) or "no other program"}): '
                'is it a checkpoint of this backbone?')
        return layout
    return next((layout for layout in rules.layouts if layout.file_format is None and
                 any(re.match(layout.detect, k) for k in state_dict)), None)


def to_authors_layout(state_dict: StateDict, rules: Optional[CheckpointRules] = None,
                      report: Optional[LoadReport] = None) -> StateDict:
    """``state_dict`` in the authors' key layout, from whichever :class:`WeightLayout` of
    ``rules`` (default :func:`known_rules`) it is in; ``report`` receives one line for the
    linear weights transposed from another program's (in, out)."""
    layout = _layout(state_dict, or_known(rules))
    if layout is None:
        return state_dict
    transposed = [k for k, v in state_dict.items() if layout.transposes(k, v)]
    if report is not None and transposed:
        report.adapted.append(f'{len(transposed)} linear weights ({transposed[0]}, ...): '
                              f'transposed from the (in, out) of the {layout.name} layout')
    return layout.to_authors(state_dict)


# --------------------------------------------------------------------------- adaptation


def resize_kernel(kernel: torch.Tensor, size: int) -> torch.Tensor:
    """(C, 1, k, k) -> (C, 1, size, size): zero-pad at the centre or centre-crop."""
    k = kernel.shape[-1]
    if (size - k) % 2:
        raise CheckpointError(
            f'cannot centre a {k}x{k} kernel in {size}x{size}: sizes must both be odd')
    if size >= k:
        return F.pad(kernel, [(size - k) // 2] * 4)
    c = (k - size) // 2
    return kernel[..., c:c + size, c:c + size].contiguous()


def grow_focal_levels(param: torch.Tensor, rows: int, key: str) -> torch.Tensor:
    """Grow ``modulation.f`` (2C + L + 1 rows) to ``rows``: new level gates are zero.

    Rows 0..2C+L-1 (q, ctx, level gates) are copied, the global gate stays last.
    """
    if rows < param.shape[0]:
        raise CheckpointError(
            f'{key}: the checkpoint has {param.shape[0] - 1} rows of q/ctx/level gates '
            f'but the model only {rows - 1}: focal levels can be added on load, not '
            'removed; use focal_levels at least those of the checkpoint')
    grown = param.new_zeros((rows, ) + tuple(param.shape[1:]))
    grown[:param.shape[0] - 1] = param[:-1]
    grown[-1] = param[-1]
    return grown


def resize_bias_table(table: torch.Tensor, numel: int, heads_first: bool) -> torch.Tensor:
    """Bilinearly resize a square position-bias table to ``numel`` positions.

    ``heads_first``: (nH, S1*S1) (``..._to_windows``), else (S1*S1, nH) (Swin table).
    The table is viewed as (1, nH, S1, S1) and interpolated with ``align_corners=False``.
    """
    table = table if heads_first else table.t()
    s1, s2 = math.isqrt(table.shape[1]), math.isqrt(numel)
    if s1 * s1 != table.shape[1] or s2 * s2 != numel:
        raise CheckpointError(
            f'position-bias tables must be square, got {table.shape[1]} -> {numel}')
    grid = table.reshape(1, -1, s1, s1).float()
    out = F.interpolate(grid, size=(s2, s2), mode='bilinear', align_corners=False)
    out = out.reshape(-1, s2 * s2).to(table.dtype)
    return out if heads_first else out.t().contiguous()


def _adapt(key: str, value: torch.Tensor, shape: torch.Size,
           rules: CheckpointRules) -> Tuple[torch.Tensor, str]:
    before = tuple(value.shape)
    for rule in rules.adaptations:
        if re.search(rule.key, key) and rule.fits(value, shape):
            return (rule.adapt(value, shape, key),
                    f'{key}: {before} -> {tuple(shape)} {rule.how(value, shape)}')
    adaptable = ', '.join(dict.fromkeys(rule.what for rule in rules.adaptations)) or 'no tensors'
    raise CheckpointError(
        f'{key}: the checkpoint has shape {before}, the model {tuple(shape)}. Only '
        f'{adaptable} are adapted on load; does the checkpoint belong to this variant '
        '(embed_dims, depths, num_heads)?')


def adapt_state_dict(state_dict: StateDict, target: StateDict,
                     report: Optional[LoadReport] = None,
                     rules: Optional[CheckpointRules] = None) -> Tuple[StateDict, LoadReport]:
    """Adapt a backbone state dict (any layout of ``rules``, default :func:`known_rules`)
    to a model's state dict ``target``, by the :class:`Adaptation` s of ``rules``.

    Returns the adapted state dict (only keys the model has) and the report, whose
    ``missing`` lists the model keys the checkpoint does not provide.
    """
    report = report if report is not None else LoadReport()
    rules = or_known(rules)
    state_dict = to_authors_layout(state_dict, rules, report)
    out = {}
    for key, value in state_dict.items():
        if key not in target:
            why = rules.dropped(key)
            if why:
                report.dropped.append(f'{key} ({why})')
            else:
                report.unexpected.append(key)
            continue
        shape = target[key].shape
        if value.shape != shape:
            value, line = _adapt(key, value, shape, rules)
            report.adapted.append(line)
        out[key] = value.to(target[key].dtype)
    report.missing = [k for k in target if k not in out]
    return out, report


def expected_gap(key: str, state_dict: StateDict, target: StateDict,
                 rules: Optional[CheckpointRules] = None) -> bool:
    """Whether the model tensor ``key`` may keep its initialisation when loading the
    authors'-layout ``state_dict``: one of the expected gaps of ``rules`` (default
    :func:`known_rules`), e.g. a dense output norm ``norm{i}``."""
    rules = or_known(rules)
    return any(gap(key, state_dict, target) for gap in rules.expected_gaps)


def check_complete(report: LoadReport, state_dict: StateDict, target: StateDict,
                   loaded: StateDict, strict: bool = True, logger='current',
                   rules: Optional[CheckpointRules] = None) -> None:
    """Raise when nothing was loaded, or (``strict``) when a tensor of the stem or of the
    stages would keep its initialisation beyond :func:`expected_gap`, or when the
    checkpoint holds tensors of the backbone's own network (under its roots: more blocks,
    stages or levels) that the model has no place for; warn otherwise."""
    if not loaded:
        raise CheckpointError(
            'the checkpoint matches no tensor of the model (an unknown key layout?). '
            f'Checkpoint keys: {_sample(state_dict)}; the model expects keys like '
            f'{_sample(target)}')
    rules = or_known(rules)
    converted = to_authors_layout(state_dict, rules)
    left = [k for k in report.missing if not expected_gap(k, converted, target, rules)]
    roots = re.compile(rf'^({"|".join(rules.roots)})\.')
    extra = [k for k in report.unexpected if roots.match(k)]
    if not left and not extra:
        return
    problems = [f'{len(left)} tensors of the model would keep their initialisation: '
                f'{_sample(left, 8)}'] if left else []
    problems += [f'{len(extra)} tensors of the checkpoint have no place in the model: '
                 f'{_sample(extra)} (another variant: depths, focal levels?)'] if extra else []
    message = (f'{"; ".join(problems)}. Checkpoint keys: {_sample(state_dict)}; pass '
               "init_cfg=dict(type='Pretrained', checkpoint=..., strict=False) to load "
               'it anyway')
    if strict:
        raise CheckpointError(message)
    print_log(message, logger=logger, level=logging.WARNING)


def _sample(keys, count: int = 5) -> str:
    keys = list(keys)
    more = f' ... ({len(keys)} in all)' if len(keys) > count else ''
    return ', '.join(keys[:count]) + more


def load_pretrained(model: torch.nn.Module, checkpoint: str, prefix: Optional[str] = None,
                    strict: bool = True, logger='current') -> LoadReport:
    """Load ``checkpoint`` into ``model`` with adaptation by its class's
    ``checkpoint_rules`` (:func:`rules_of`), and log the report.

    Raises :class:`CheckpointError` as :func:`check_complete` says; ``strict=False``
    turns weights left at their initialisation into a warning.
    """
    report, rules = LoadReport(), rules_of(model)
    state_dict = unwrap(read_checkpoint(checkpoint), prefix, report, rules)
    target = model.state_dict()
    loaded, report = adapt_state_dict(state_dict, target, report, rules)
    check_complete(report, state_dict, target, loaded, strict, logger, rules)
    model.load_state_dict(loaded, strict=False)
    report.log(logger)
    print_log(f'loaded {len(loaded)} of {len(target)} tensors of the model '
              f'{type(model).__name__} from {checkpoint}', logger=logger)
    return report


# ---------------------------------------------------------------------- classifiers

#: the classifier head in the authors' layout (other layouts are renamed to it)
HEAD_KEYS = ('head.weight', 'head.bias')


def to_classifier(checkpoint: dict, backbone: torch.nn.Module,
                  logger='current') -> Dict[str, torch.Tensor]:
    """A whole image classifier's checkpoint as the state dict of mmpretrain's
    ``ImageClassifier`` around ``backbone`` (keys ``backbone.*`` and ``head.fc.*``).

    ``checkpoint`` is what mmengine hands to ``load_state_dict`` (a state dict, or a dict
    holding one under ``model``): the authors' ImageNet file (``norm``, ``head``), timm's
    (``head.fc``), Hugging Face's (``focalnet.*``, ``classifier``) or an mmpretrain
    classifier's own (``backbone.*``, ``head.fc.*``). The backbone's part is adapted by its
    class's rules as :func:`load_pretrained` does (kernels, levels, bias tables) and must
    load completely; the head is taken as it is, and a file without one (a headless
    release) leaves the head at its initialisation. Other keys (a neck's) are kept for
    ``load_state_dict`` to report.

    Raises:
        CheckpointError: the backbone's part does not fit (another variant: a tensor of
            another shape, too few or too many tensors; an unknown layout), or the head's
            input width is not the backbone's output width.
    """
    report, rules = LoadReport(), rules_of(backbone)
    if any(k.startswith('backbone.') for k in checkpoint):  # an mmpretrain classifier's
        state_dict = {k[len('backbone.'):]: v for k, v in checkpoint.items()
                      if k.startswith('backbone.')}
        head = {k.replace('head.fc.', 'head.'): v for k, v in checkpoint.items()
                if k.startswith('head.fc.')}
        rest = {k: v for k, v in checkpoint.items()
                if not k.startswith(('backbone.', 'head.fc.'))}
    else:
        whole = to_authors_layout(unwrap(checkpoint, None, report, rules), rules)
        head = {k: v for k, v in whole.items() if k in HEAD_KEYS}
        state_dict = {k: v for k, v in whole.items() if k not in HEAD_KEYS}
        rest = {}
    target = backbone.state_dict()
    loaded, report = adapt_state_dict(state_dict, target, report, rules)
    check_complete(report, state_dict, target, loaded, True, logger, rules)
    width = backbone.num_features[-1]
    if 'head.weight' in head and head['head.weight'].shape[-1] != width:
        raise CheckpointError(
            f'the checkpoint\'s head takes {head["head.weight"].shape[-1]} features, the '
            f'backbone gives {width}: the checkpoint belongs to another variant')
    report.log(logger)
    head_line = (f'the head ({head["head.weight"].shape[0]} classes)' if 'head.weight' in head
                 else 'no head in the checkpoint (the head keeps its initialisation)')
    print_log(f'classifier: loaded {len(loaded)} of {len(target)} tensors of the backbone '
              f'{type(backbone).__name__}; {head_line}', logger=logger)
    out = {f'backbone.{k}': v for k, v in loaded.items()}
    out.update({k.replace('head.', 'head.fc.'): v for k, v in head.items()})
    out.update(rest)
    return out


def compare_state_dicts(state: StateDict, target: StateDict) -> List[str]:
    """One line per key missing from ``state``, unexpected in it, or of another shape."""
    problems = [f'missing: {k}' for k in target if k not in state]
    problems += [f'unexpected: {k}' for k in state if k not in target]
    problems += [f'shape: {k} {tuple(v.shape)} in the checkpoint, {tuple(target[k].shape)} '
                 'in the model' for k, v in state.items()
                 if k in target and v.shape != target[k].shape]
    return problems


def _load_from_hub(filename: str, map_location=None) -> dict:
    """mmengine's loader for ``hf-hub:`` (``load_from``, ``tools/test.py``, mmengine's own
    ``Pretrained`` init): the file of :func:`hub_file`, read as :func:`read_checkpoint`
    reads a local one (a ``.pdparams`` as :func:`_load_from_paddle` gives it)."""
    return _without_file_formats(read_checkpoint(filename))


#: the paths mmengine's ``CheckpointLoader`` reads with :func:`_load_from_paddle`. It tries
#: its patterns with ``re.match`` in reverse alphabetical order: the first sorts before its
#: ``https://`` and ``http://``, the second after every named scheme (``hf-hub:`` goes to
#: :func:`_load_from_hub`, which reads ``.pdparams`` alike) and before the local files' ''
PADDLE_SCHEMES = (r'https?://.*\.pdparams([?#].*)?\Z', r'.*\.pdparams\Z')


def _load_from_paddle(filename: str, map_location=None) -> dict:
    """mmengine's loader for ``.pdparams`` paths and URLs (``load_from``,
    ``tools/test.py``, ``mmengine.runner.load_checkpoint``): the file read by
    :func:`read_checkpoint` (no code of it run), in the authors' layout by the rules of
    every registered backbone (Linear weights transposed back), without the buffers that
    the backbones recompute; ``{'state_dict': ...}`` for a flat file."""
    checkpoint = _without_file_formats(read_checkpoint(filename))
    return {'state_dict': checkpoint} if all(
        isinstance(v, torch.Tensor) for v in checkpoint.values()) else checkpoint


def _without_file_formats(obj, logger='current'):
    """``obj`` with every state dict marked as read from another program's file
    (:data:`FORMAT_MARK`) in the authors' layout, by :func:`known_rules`; the buffers those
    rules recompute are dropped and logged. Unmarked dicts are returned as they are."""
    if not isinstance(obj, dict):
        return obj
    if not file_formats(obj):
        out = {k: _without_file_formats(v, logger) for k, v in obj.items()}
        return obj if all(out[k] is obj[k] for k in obj) else out
    rules = known_rules()
    state = to_authors_layout(obj, rules)
    recomputed = [k for k in state if any(re.search(p, k) for p in rules.recomputed)]
    if recomputed:
        print_log(f'dropped {len(recomputed)} buffers the backbone recomputes '
                  f'({_sample(recomputed, 2)}) of a {" and ".join(file_formats(obj))} file',
                  logger=logger)
    return {k: v for k, v in state.items() if k not in recomputed}


def register_hub_scheme() -> None:
    """Let mmengine's ``CheckpointLoader`` read ``hf-hub:`` checkpoints and local
    ``.safetensors`` files (which its own local loader hands to ``torch.load``) with
    :func:`_load_from_hub`; ``import mmfocal`` does it."""
    from mmengine.runner import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes=('hf-hub:', r'.*\.safetensors\Z'),
                                     loader=_load_from_hub, force=True)


def register_paddle_scheme() -> None:
    """Let mmengine's ``CheckpointLoader`` read ``.pdparams`` files and URLs
    (:data:`PADDLE_SCHEMES`; ``import mmfocal`` does it)."""
    from mmengine.runner import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes=PADDLE_SCHEMES, loader=_load_from_paddle,
                                     force=True)


register_hub_scheme()
register_paddle_scheme()
