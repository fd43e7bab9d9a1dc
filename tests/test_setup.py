"""``make setup`` and ``make demo`` never change an environment they did not create: in an
active virtual environment that holds torch, mmcv, mmengine, mmdet, mmsegmentation or numpy
at another version than the stack pins, tools/setup_env.sh stops before installing anything
and says what it would replace and how to go on.

The environments are made without pip and hold only package metadata (``*.dist-info``), which
is what the check reads: nothing is downloaded or installed.
"""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

from _helpers import ROOT

CONSTRAINTS = osp.join(ROOT, 'requirements', 'constraints.txt')


def pins() -> dict:
    with open(CONSTRAINTS) as f:
        return dict(re.match(r'([\w.-]+)==(\S+)', line).groups()
                    for line in f if re.match(r'[\w.-]+==', line))


def foreign_env(path, packages: dict) -> dict:
    """A virtual environment at ``path`` whose site-packages holds the metadata of
    ``packages`` {name: version}; the environment variables of a shell that activated it."""
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(path)], check=True)
    site = subprocess.run(
        [str(path / 'bin' / 'python'), '-c',
         'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
        capture_output=True, text=True, check=True).stdout.strip()
    for name, version in packages.items():
        info = osp.join(site, f'{name}-{version}.dist-info')
        os.makedirs(info)
        with open(osp.join(info, 'METADATA'), 'w') as f:
            f.write(f'Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n')
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONHOME')}
    env.update(VIRTUAL_ENV=str(path), PATH=f'{path}/bin:{env.get("PATH", "")}')
    return env


def snapshot(path) -> dict:
    """{file: (size, mtime)} of every file under ``path``."""
    out = {}
    for folder, _, files in os.walk(path):
        for name in files:
            stat = os.stat(osp.join(folder, name), follow_symlinks=False)
            out[osp.join(folder, name)] = (stat.st_size, stat.st_mtime_ns)
    return out


@pytest.mark.parametrize('command', [['bash', 'tools/setup_env.sh'], ['make', 'demo']],
                         ids=['setup', 'demo'])
def test_a_foreign_environment_is_left_unchanged(tmp_path, command):
    pinned = pins()
    env = foreign_env(tmp_path / 'env', {'torch': '2.1.2', 'numpy': '1.26.4',
                                         'mmcv': pinned['mmcv'], 'requests': '2.0.0'})
    before = snapshot(tmp_path / 'env')
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode != 0, result.stdout + result.stderr
    message = result.stderr
    assert f'torch 2.1.2 would be replaced by {pinned["torch"]}' in message, message
    assert f'numpy 1.26.4 would be replaced by {pinned["numpy"]}' in message, message
    assert 'mmcv' not in message.split('setup: nothing')[0].split('pins')[1], message
    assert 'requests' not in message
    assert "run 'deactivate'" in message and 'python tools/demo.py det' in message
    assert snapshot(tmp_path / 'env') == before


def test_a_local_version_label_is_the_pinned_release(tmp_path):
    """torch 2.13.0+cpu is the pinned 2.13.0: only numpy, at another version, is named."""
    pinned = pins()
    env = foreign_env(tmp_path / 'env', {'torch': f'{pinned["torch"]}+cpu',
                                         'numpy': '1.26.4'})
    result = subprocess.run(['bash', 'tools/setup_env.sh'], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    named = re.findall(r'^  (\S+) \S+ would be replaced', result.stderr, re.M)
    assert named == ['numpy'], result.stderr
