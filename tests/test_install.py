"""``pip install .`` (not editable) into a fresh virtual environment that already has torch,
mmcv, mmdet and mmseg: ``import mmfocal`` registers both backbones and the configs of the
clone build and run with the installed package.

The new environment sees the packages of the one running the tests through a ``.pth`` line
(a plain path: the ``.pth`` files there, such as an editable mmfocal's, are not processed),
and pip installs without dependencies, index or build isolation: nothing is downloaded.
"""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import sysconfig
import textwrap

import pytest


from _helpers import ROOT, run_checked
pytestmark = pytest.mark.slow


def run(args, cwd, env):
    return run_checked(args, cwd=cwd, env=env).stdout


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """(python of the new environment, the clone it was installed from, environment vars)."""
    tmp = tmp_path_factory.mktemp('install')
    clone = str(tmp / 'clone')
    files = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others',
                            '--exclude-standard'], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split('\0')
    for rel in filter(None, files):
        if osp.isfile(osp.join(ROOT, rel)):
            os.makedirs(osp.dirname(osp.join(clone, rel)), exist_ok=True)
            shutil.copy2(osp.join(ROOT, rel), osp.join(clone, rel))
    venv = str(tmp / 'venv')
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'VIRTUAL_ENV')}
    env.update(PIP_NO_INDEX='1', PIP_DISABLE_PIP_VERSION_CHECK='1')
    run([sys.executable, '-m', 'venv', venv], cwd=str(tmp), env=env)
    python = osp.join(venv, 'bin', 'python')
    site = run([python, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
               cwd=str(tmp), env=env).strip()
    parent = {sysconfig.get_paths()['purelib'], sysconfig.get_paths()['platlib']}
    with open(osp.join(site, 'toolboxes.pth'), 'w') as f:
        f.write('\n'.join(sorted(parent)) + '\n')
    run([python, '-m', 'pip', 'install', '--no-deps', '--no-build-isolation',
         '--ignore-installed', '.'], cwd=clone, env=env)
    return python, clone, env, site


def test_import_registers_both_backbones(installed, tmp_path):
    python, _, env, site = installed
    out = run([python, '-c', textwrap.dedent('''
        import mmfocal
        from mmdet.registry import MODELS as DET
        from mmseg.registry import MODELS as SEG
        from mmengine.registry import HOOKS
        print(mmfocal.__file__)
        print([r.get(n).__module__ for r in (DET, SEG)
               for n in ('FocalNet', 'FocalTransformer')])
        print(HOOKS.get('FocalMapsHook').__module__)
    ''')], cwd=str(tmp_path), env=env).splitlines()
    assert out[0] == osp.join(site, 'mmfocal', '__init__.py')  # the installed copy
    assert out[1] == str(['mmfocal.models.backbones.focalnet',
                          'mmfocal.models.backbones.focal_transformer'] * 2)
    assert out[2] == 'mmfocal.engine.focal_maps_hook'


@pytest.mark.parametrize('config, task', [
    ('configs/detection/demo_mask_rcnn_focalnet.py', 'mmdet'),
    ('configs/segmentation/demo_upernet_focal_transformer.py', 'mmseg'),
])
def test_clone_configs_run_with_the_installed_package(installed, tmp_path, config, task):
    """The config's custom_imports finds the installed mmfocal; its model runs a forward."""
    python, clone, env, site = installed
    out = run([python, '-c', textwrap.dedent(f'''
        import sys, torch
        from mmengine.config import Config
        from mmengine.registry import init_default_scope
        from {task}.registry import MODELS
        cfg = Config.fromfile({osp.join(clone, config)!r})
        print(sys.modules['mmfocal'].__file__)
        init_default_scope(cfg.default_scope)
        model = MODELS.build(cfg.model).eval()
        with torch.no_grad():
            feats = model.backbone(torch.randn(1, 3, 64, 96))
        print([tuple(f.shape) for f in feats])
    ''')], cwd=str(tmp_path), env=env).splitlines()
    assert out[0] == osp.join(site, 'mmfocal', '__init__.py')
    assert out[1] == str([(1, 32 * 2**i, 16 // 2**i, 24 // 2**i) for i in range(4)])


def test_pip_install_into_this_stack_installs_mmfocal_only(installed, tmp_path):
    """``pip install <checkout>`` into an environment that holds torch, mmcv, mmengine,
    mmdet and mmseg (this one: CI runs it on the development and the oldest stack) would
    install mmfocal and nothing else: no index is offered, so anything more fails."""
    _, clone, env, _ = installed
    report = tmp_path / 'report.json'
    run([sys.executable, '-m', 'pip', 'install', '--dry-run', '--no-index',
         '--no-build-isolation', '--report', str(report), clone], cwd=str(tmp_path), env=env)
    with open(report) as f:
        names = [item['metadata']['name'] for item in json.load(f)['install']]
    assert names == ['mmfocal']


def test_the_newest_torch_stays_when_mmfocal_installs(tmp_path):
    """An environment whose torch is the newest release mmfocal supports (2.14) takes
    ``pip install <checkout>`` as mmfocal alone: its torch (and the mmcv built for it)
    is never replaced. The environment sees this one's packages through a ``.pth`` line,
    with torch's metadata saying 2.14.1; no index is offered, so a replacement fails."""
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'VIRTUAL_ENV')}
    env.update(PIP_NO_INDEX='1', PIP_DISABLE_PIP_VERSION_CHECK='1')
    venv = str(tmp_path / 'venv')
    run([sys.executable, '-m', 'venv', venv], cwd=str(tmp_path), env=env)
    python = osp.join(venv, 'bin', 'python')
    site = run([python, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
               cwd=str(tmp_path), env=env).strip()
    with open(osp.join(site, 'toolboxes.pth'), 'w') as f:
        f.write('\n'.join(sorted({sysconfig.get_paths()['purelib'],
                                  sysconfig.get_paths()['platlib']})) + '\n')
    metadata = osp.join(site, 'torch-2.14.1.dist-info')
    os.makedirs(metadata)
    with open(osp.join(metadata, 'METADATA'), 'w') as f:
        f.write('Metadata-Version: 2.1\nName: torch\nVersion: 2.14.1\n')
    open(osp.join(metadata, 'RECORD'), 'w').close()
    report = tmp_path / 'report.json'
    run([python, '-m', 'pip', 'install', '--dry-run', '--no-build-isolation', '--report',
         str(report), ROOT], cwd=str(tmp_path), env=env)
    with open(report) as f:
        names = [item['metadata']['name'] for item in json.load(f)['install']]
    assert names == ['mmfocal']
    version = run([python, '-c', 'import importlib.metadata as m; print(m.version("torch"))'],
                  cwd=str(tmp_path), env=env).strip()
    assert version == '2.14.1'  # the check saw the newest torch, not this environment's
