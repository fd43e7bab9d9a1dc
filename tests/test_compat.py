"""mmfocal.compat on the running torch (CI runs this file on torch 2.13 and on 2.1.2), and the
backbones' outputs and FLOP counts against the other supported stack when it is installed.
"""
import os
import os.path as osp
import pickle
import subprocess
import sys
import textwrap

import pytest
import torch

from mmfocal import compat
from mmfocal.models.checkpoint import CheckpointError, read_checkpoint

from _helpers import ROOT
STACKS = {'latest': osp.join(ROOT, '.venv', 'bin', 'python'),
          'oldest': osp.join(ROOT, '.venv-oldest', 'bin', 'python')}


def run_python(python, code, cwd=ROOT):
    result = subprocess.run([python, '-c', textwrap.dedent(code)], cwd=cwd,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return [line[len('RESULT '):] for line in result.stdout.splitlines()
            if line.startswith('RESULT ')]


# ----------------------------------------------------------------------------- state


def test_autocast_enabled_follows_the_autocast_context():
    assert not compat.autocast_enabled('cpu')
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert compat.autocast_enabled('cpu')
        assert not compat.autocast_enabled('cuda')
    assert not compat.autocast_enabled('cpu')


def test_is_tracing_under_jit_trace_and_compile():
    seen = []

    def record(x):
        seen.append(compat.is_tracing())
        return x * 2

    record(torch.ones(2))
    torch.jit.trace(record, torch.ones(2), check_trace=False)
    torch.compile(record, backend='eager', fullgraph=True)(torch.ones(3))
    assert seen == [False, True, True]


class _PaddedConv(torch.nn.Conv2d):
    """A depthwise convolution whose padding is read from its weight's size."""

    def forward(self, x):
        self.sizes.append(compat.static_int(self.weight.shape[-1]))
        return torch.nn.functional.conv2d(x, self.weight, padding=self.sizes[-1] // 2,
                                          groups=self.groups)


def test_static_int_reads_a_traced_parameter_size():
    conv = _PaddedConv(4, 4, 5, groups=4, bias=False)
    conv.sizes = []
    x = torch.randn(1, 4, 8, 8)
    traced = torch.jit.trace(conv, x, check_trace=False)
    assert conv.sizes == [5] and type(conv.sizes[0]) is int
    torch.testing.assert_close(traced(x), torch.nn.functional.conv2d(
        x, conv.weight, padding=2, groups=4))


# ----------------------------------------------------------------------------- loading


class _Call:
    """Pickles as a call of ``fn(*args)``: what a malicious checkpoint holds."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


@pytest.fixture(params=['torch', 'restricted'])
def loader(request, monkeypatch):
    """Both ways of loading: torch's weights_only unpickler with allow-listed globals
    (torch >= 2.6) and the restricted unpickler of older torch (forced here on any)."""
    if request.param == 'torch':
        if not compat.WEIGHTS_ONLY_DEFAULT:
            pytest.skip(f'torch {torch.__version__} loads with the restricted unpickler')
    else:
        monkeypatch.setattr(compat, 'WEIGHTS_ONLY_DEFAULT', False)
    return compat.load_weights


def test_reads_mmengine_objects(loader, tmp_path):
    import numpy as np
    from mmengine.logging import HistoryBuffer
    buffer = HistoryBuffer()
    buffer.update(1.5)
    buffer.update(2.5)
    path = tmp_path / 'ckpt.pth'
    torch.save({'state_dict': {'w': torch.arange(4.)}, 'hub': buffer,
                'mean': _Call(getattr, HistoryBuffer, 'mean'),
                'array': np.arange(3), 'scalar': np.float64(0.5), 'bytes': b'\x00\x01'},
               path)
    loaded = loader(path)
    torch.testing.assert_close(loaded['state_dict']['w'], torch.arange(4.))
    assert isinstance(loaded['hub'], HistoryBuffer) and loaded['hub'].current() == 2.5
    assert loaded['mean'] is HistoryBuffer.mean and loaded['bytes'] == b'\x00\x01'
    assert np.array_equal(loaded['array'], np.arange(3)) and loaded['scalar'] == 0.5


@pytest.mark.parametrize('payload', [
    lambda marker: _Call(os.system, f'touch {marker}'),
    lambda marker: _Call(getattr, subprocess.Popen, '__init__'),
    lambda marker: _Call(eval, f'open({str(marker)!r}, "w")'),
])
def test_refuses_a_malicious_pickle(loader, tmp_path, payload):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': torch.ones(1)}, 'x': payload(marker)}, path)
    with pytest.raises(pickle.UnpicklingError):
        loader(path)
    assert not marker.exists()


def test_extra_globals_hold_for_one_call_only(loader, tmp_path):
    import argparse
    path = tmp_path / 'dino.pth'
    torch.save({'model': {'w': torch.ones(1)}, 'args': argparse.Namespace(lr=1e-4)}, path)
    assert loader(path, extra=[argparse.Namespace])['args'].lr == 1e-4
    with pytest.raises(pickle.UnpicklingError):
        loader(path)


def test_read_checkpoint_reports_a_refused_global(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'x': _Call(os.getcwd)}, path)
    with pytest.raises(CheckpointError, match='posix.getcwd|os.getcwd'):
        read_checkpoint(str(path))


def test_allow_globals_is_all_or_nothing():
    before = dict(compat._ALLOWED)
    safe = set(torch.serialization.get_safe_globals()) if compat.WEIGHTS_ONLY_DEFAULT else None
    with pytest.raises(AttributeError):
        compat.allow_globals([_Call, 42])  # 42 has no qualified name
    assert compat._ALLOWED == before
    if safe is not None:
        assert set(torch.serialization.get_safe_globals()) == safe


@pytest.mark.parametrize('broken', ['numpy.core.multiarray', 'mmengine.logging'])
def test_import_after_a_failed_import_installs_everything(broken):
    """A failure while allow-listing leaves nothing half done: the next ``import mmfocal``
    allow-lists and registers everything."""
    module = 'numpy._core.multiarray' if broken.startswith('numpy') and \
        int(__import__('numpy').__version__.split('.')[0]) >= 2 else broken
    out = run_python(sys.executable, f'''
        import sys, torch
        import mmdet.registry, mmseg.registry, mmengine.registry
        import mmengine.logging, numpy
        saved = sys.modules['{module}']
        sys.modules['{module}'] = None  # its import fails
        try:
            import mmfocal
        except ImportError as exc:
            print('RESULT failed', isinstance(exc, ImportError))
        sys.modules['{module}'] = saved
        import mmfocal
        from mmfocal import compat
        from mmdet.registry import MODELS
        from mmengine.registry import HOOKS
        print('RESULT', 'HistoryBuffer' in str(compat._ALLOWED),
              MODELS.get('FocalNet') is not None, HOOKS.get('FocalMapsHook') is not None)
        import importlib
        importlib.reload(sys.modules['mmfocal.models.backbones.focalnet'])
        print('RESULT reloaded', MODELS.get('FocalNet').__module__)
    ''')
    assert out == ['failed True', 'True True True',
                   'reloaded mmfocal.models.backbones.focalnet']


def test_another_package_keeps_its_registered_name():
    out = run_python(sys.executable, '''
        from mmdet.registry import MODELS
        import torch
        @MODELS.register_module(name='FocalNet')
        class Other(torch.nn.Module):
            pass
        try:
            import mmfocal
        except KeyError as exc:
            print('RESULT', 'already registered' in str(exc))
    ''')
    assert out == ['True']


# ----------------------------------------------------------------------------- stacks

BACKBONES = {
    'FocalNet': dict(type='FocalNet', embed_dims=32, depths=(1, 1, 2, 1), focal_levels=3,
                     drop_path_rate=0.),
    'FocalTransformer': dict(type='FocalTransformer', embed_dims=32, depths=(1, 1, 2, 1),
                             num_heads=(1, 2, 4, 8), drop_path_rate=0.),
}

MEASURE = '''
import json, sys, torch
import mmfocal
from mmdet.registry import MODELS
from mmengine.analysis import FlopAnalyzer
cfg, weights, x, out = sys.argv[1:]
model = MODELS.build(json.loads(cfg))
model.load_state_dict(torch.load(weights, map_location='cpu'))
x = torch.load(x)
feats = model(x)
sum((f * f).mean() for f in feats).backward()
grads = {n: p.grad for n, p in model.named_parameters()}
model.eval()
with torch.no_grad():
    flops = FlopAnalyzer(model, x).total()
torch.save(dict(feats=[f.detach() for f in feats], grads=grads, flops=flops,
                version=str(torch.__version__)), out)
'''


def measure(python, cfg, weights, x, out):
    import json
    result = subprocess.run([python, '-c', MEASURE, json.dumps(cfg), weights, x, out],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return torch.load(out)


@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_outputs_and_flops_equal_the_other_stack(name, tmp_path):
    """Same weights, same input: the outputs, gradients and FLOPs on this torch and on the
    other supported stack's (CI installs the latest stack first, then the oldest, which
    then compares with it)."""
    here = torch.__version__
    other = next((p for p in STACKS.values() if osp.exists(p) and
                  osp.realpath(osp.dirname(osp.dirname(p))) != osp.realpath(sys.prefix)), None)
    if other is None:
        pytest.skip('the other stack is not installed (make setup STACK=oldest / latest)')
    torch.manual_seed(0)
    from mmdet.registry import MODELS
    model = MODELS.build(BACKBONES[name])
    weights, x = str(tmp_path / 'w.pth'), str(tmp_path / 'x.pth')
    torch.save(model.state_dict(), weights)
    torch.save(torch.randn(2, 3, 72, 104), x)
    mine = measure(sys.executable, BACKBONES[name], weights, x, str(tmp_path / 'mine.pth'))
    theirs = measure(other, BACKBONES[name], weights, x, str(tmp_path / 'theirs.pth'))
    assert mine['version'] == str(here) and theirs['version'] != str(here)
    for a, b in zip(mine['feats'], theirs['feats']):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    for key, grad in mine['grads'].items():
        torch.testing.assert_close(grad, theirs['grads'][key], atol=1e-5, rtol=1e-4)
    assert mine['flops'] == theirs['flops'] > 0
