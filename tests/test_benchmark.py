"""tools/analysis/benchmark.py: every model runs in its own process, in both modes; the
references compute what mmfocal's models compute; ratios to Swin-T are printed."""
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
MODELS = ('FocalNet-T', 'FocalNet-T channels-first', 'FocalTransformer-T',
          'FocalTransformer-T rolls+unfold', 'Swin-T')


@pytest.mark.parametrize('mode', ['train', 'infer'])
def test_benchmark_prints_every_model_and_ratios(mode):
    done = subprocess.run(
        [sys.executable, 'tools/analysis/benchmark.py', '--mode', mode, '--sizes', '64x96',
         '--batch', '1', '--rounds', '1', '--steps', '1'],
        cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    for reference in ('FocalNet-T channels-first', 'FocalTransformer-T rolls+unfold'):
        diff = re.search(rf'{re.escape(reference)}: max \|output - .*\| = (\S+)', out)
        assert diff and float(diff.group(1)) < 1e-4, out
    rows = {m.group(1).strip(): m for m in re.finditer(
        r'^  (\S.*?)\s+([\d.]+)\s+([\d.]+)\s+(-?\d+)\s+([\d.]+)x\s+(-?[\d.]+)x$', out, re.M)}
    assert set(rows) == set(MODELS), out
    assert float(rows['Swin-T'].group(5)) == 1.0
    for name, row in rows.items():
        step_ms, images_s = float(row.group(2)), float(row.group(3))
        assert step_ms > 0 and abs(images_s - 1e3 / step_ms) < 0.01 * images_s + 0.01, row.group(0)


@pytest.mark.skipif(torch.cuda.is_available(), reason='a CUDA device is present')
def test_benchmark_rejects_cuda_without_a_device():
    done = subprocess.run(
        [sys.executable, 'tools/analysis/benchmark.py', '--device', 'cuda'],
        cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and 'no CUDA device' in done.stderr
