"""tools/analysis/benchmark.py: every model runs in its own process, in both modes; the
references compute what mmfocal's models compute; ratios to Swin-T are printed; compute
paths and precisions make rows and tables; a failing model leaves its row empty."""
import argparse
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch

from _helpers import ROOT
sys.path.insert(0, osp.join(ROOT, 'tools', 'analysis'))
import benchmark  # noqa: E402
MODELS = ('FocalNet-T', 'FocalNet-T channels-first', 'FocalTransformer-T',
          'FocalTransformer-T rolls+unfold', 'Swin-T')


@pytest.mark.slow
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


def run_benchmark(*args):
    return subprocess.run(
        [sys.executable, 'tools/analysis/benchmark.py', '--rounds', '1', '--steps', '1',
         '--batch', '1', *args], cwd=ROOT, capture_output=True, text=True)


def test_rows_per_compute_path_that_changes_the_model():
    """FocalNet-T's rows differ in functions and layout, FocalTransformer-T's in functions
    only, inference rows in nothing that only the backward reads; Swin-T and the
    references once, on the device's default path."""
    models = ['FocalNet-T', 'FocalTransformer-T', 'Swin-T', 'FocalNet-T channels-first']
    train = benchmark.table_rows(models, list(benchmark.PATHS), 'train')
    assert train == {
        'FocalNet-T recompute/nhwc': ('FocalNet-T', 'recompute/nhwc'),
        'FocalNet-T recompute/nchw': ('FocalNet-T', 'recompute/nchw'),
        'FocalNet-T autograd/nhwc': ('FocalNet-T', 'autograd/nhwc'),
        'FocalNet-T autograd/nchw': ('FocalNet-T', 'autograd/nchw'),
        'FocalTransformer-T recompute': ('FocalTransformer-T', 'recompute/nhwc'),
        'FocalTransformer-T autograd': ('FocalTransformer-T', 'autograd/nhwc'),
        'Swin-T': ('Swin-T', None),
        'FocalNet-T channels-first': ('FocalNet-T channels-first', None)}
    infer = benchmark.table_rows(models, ['autograd/nchw', 'recompute/nhwc'], 'infer')
    assert list(infer) == ['FocalNet-T nchw', 'FocalNet-T nhwc', 'FocalTransformer-T',
                           'Swin-T', 'FocalNet-T channels-first']
    assert benchmark.table_rows(models, None, 'train') == {m: (m, None) for m in models}


def test_set_path_sets_the_devices_compute_path(monkeypatch):
    """The functions and the layout change; the device's other fields stay."""
    monkeypatch.setitem(benchmark.base.COMPUTE_PATHS, 'cuda', benchmark.base.COMPUTE_PATHS['cuda'])
    benchmark.set_path('cuda', 'autograd/nhwc')
    assert benchmark.base.COMPUTE_PATHS['cuda'] == benchmark.base.ComputePath(
        recompute=False, channels_last_convs=True, chunk_bytes=None, forward_weight_grad=False)


@pytest.mark.slow
def test_one_table_per_precision_with_a_row_per_path():
    done = run_benchmark('--mode', 'infer', '--sizes', '64x96', '--models', 'FocalNet-T',
                         '--paths', 'recompute/nhwc', 'recompute/nchw', '--precisions',
                         'fp32', 'bf16', '--cudnn-benchmark')
    assert done.returncode == 0, done.stderr[-3000:]
    tables = re.split(r'^input 1x3x64x96, (\w+)$', done.stdout, flags=re.M)[1:]
    assert tables[::2] == ['fp32', 'bf16'], done.stdout
    for table in tables[1::2]:
        assert re.findall(r'^  (FocalNet-T \w+)\s+[\d.]+\s+[\d.]+\s+-?\d+$', table,
                          re.M) == ['FocalNet-T nhwc', 'FocalNet-T nchw'], done.stdout
    assert 'cudnn.benchmark' in done.stdout.splitlines()[0]


def test_a_failing_model_leaves_its_row_empty_and_the_exit_status_nonzero():
    done = run_benchmark('--sizes', '0', '--models', 'FocalNet-T')
    assert done.returncode == 1
    assert re.search(r'^  FocalNet-T\s+failed$', done.stdout, re.M), done.stdout
    assert 'FocalNet-T (fp32): FocalNet-T at 0 failed' in done.stderr
    assert 'with B, H, W >= 1' in done.stderr


def test_worker_measures_every_precision_in_one_process(monkeypatch):
    """As on CUDA: one model, one process, a measurement per precision, on the path given."""
    monkeypatch.setitem(benchmark.base.COMPUTE_PATHS, 'cpu', benchmark.base.COMPUTE_PATHS['cpu'])
    args = argparse.Namespace(worker='FocalTransformer-T', paths=['autograd/nchw'],
                              sizes=['32'], batch=1, steps=1, warmup=1, mode='train',
                              device='cpu', precisions=['fp32', 'bf16'], runtimes=['torch'],
                              source=None, system=None)
    results = benchmark.worker(args)
    assert len(results) == 2 and all(r['seconds'] > 0 for r in results)
    assert benchmark.base.COMPUTE_PATHS['cpu'] == benchmark.base.ComputePath(
        recompute=False, channels_last_convs=False, chunk_bytes=2**22)  # the rest kept


@pytest.mark.slow
def printed_ratio_fits(ratio, numerator_ms, denominator_ms):
    """Whether a ratio printed to 2 decimals fits the quotient of two step times printed
    to 0.1 ms: each of the three was rounded on its own."""
    low = (numerator_ms - 0.05) / (denominator_ms + 0.05)
    high = (numerator_ms + 0.05) / (denominator_ms - 0.05)
    return low - 0.005 <= ratio <= high + 0.005


def test_printed_ratio_fits_allows_the_rounding_of_its_three_numbers_only():
    assert printed_ratio_fits(1.60, 27.7, 17.4)  # 27.7 / 17.4 = 1.592
    assert not printed_ratio_fits(1.62, 27.7, 17.4)
    assert not printed_ratio_fits(1.56, 27.7, 17.4)


def test_onnxruntime_rows_beside_eager():
    """--runtimes torch onnxruntime: a row per model and runtime, each compared with Swin-T
    run by the same runtime, the speed ratio to eager mode and the outputs' difference."""
    pytest.importorskip('onnxruntime', reason='onnxruntime is not installed: the deploy '
                        'extra is only on the latest stack')
    done = run_benchmark('--mode', 'infer', '--sizes', '64x96', '--models', 'FocalNet-T',
                         'FocalTransformer-T', 'Swin-T', '--runtimes', 'torch', 'onnxruntime')
    assert done.returncode == 0, done.stderr[-3000:]
    rows = re.findall(r'^  (\S.*?)\s+([\d.]+)\s+[\d.]+\s+(-|\d+)\s+([\d.]+)x\s+(-|[\d.]+x)$',
                      done.stdout, re.M)
    names = ['FocalNet-T', 'FocalTransformer-T', 'Swin-T']
    assert [(name, peak == '-') for name, _, peak, _, _ in rows] == \
        [(name, False) for name in names] + [(f'{name} onnxruntime', True) for name in names], \
        done.stdout
    ms = {name: float(step) for name, step, _, _, _ in rows}
    for name, _, _, speed, _ in rows:
        runtime = ' onnxruntime' if name.endswith('onnxruntime') else ''
        assert printed_ratio_fits(float(speed), ms[f'Swin-T{runtime}'], ms[name]), done.stdout
    for name in names:
        line = re.search(rf'^  {name} onnxruntime vs {name}: [\d.]+x the speed, max \|output '
                         r'difference\| (\S+)$', done.stdout, re.M)
        assert line and float(line.group(1)) < 1e-4, done.stdout


def test_onnxruntime_only_for_cpu_inference_in_float32():
    done = run_benchmark('--mode', 'train', '--runtimes', 'onnxruntime')
    assert done.returncode == 2
    assert '--runtimes onnxruntime: inference (--mode infer) on the CPU in float32' in \
        done.stderr


@pytest.mark.slow
def test_against_a_git_ref_measures_its_package_in_the_same_rounds():
    """--against: a row per mmfocal model computed by the ref's package (its workers check
    where mmfocal came from), the per-round ratios to Swin-T and the A/B line."""
    done = subprocess.run(
        [sys.executable, 'tools/analysis/benchmark.py', '--rounds', '2', '--steps', '1',
         '--batch', '1', '--sizes', '32', '--models', 'FocalNet-T', 'Swin-T',
         '--against', 'HEAD'], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = re.findall(r'^  (\S.*?)\s+[\d.]+\s+[\d.]+\s+-?\d+\s+[\d.]+x\s+-?[\d.]+x$',
                      done.stdout, re.M)
    assert rows == ['FocalNet-T', 'FocalNet-T @HEAD', 'Swin-T'], done.stdout
    by_round = re.search(r'^    FocalNet-T @HEAD\s+([\d.]+)x ([\d.]+)x \(spread', done.stdout,
                         re.M)
    assert by_round, done.stdout
    ab = re.search(r'^  A/B FocalNet-T vs FocalNet-T @HEAD: ([\d.]+)x the speed, [\d.]+x the '
                   r'peak memory; by round ([\d.]+)x ([\d.]+)x: (.*)$', done.stdout, re.M)
    assert ab and ab.group(4) == benchmark.verdict([float(ab.group(2)),
                                                    float(ab.group(3))]), done.stdout


def test_against_an_unknown_ref_is_an_error():
    done = run_benchmark('--sizes', '32', '--models', 'FocalNet-T', '--against', 'no-such-ref')
    assert done.returncode == 1
    assert '--against no-such-ref: not a commit of the repository' in done.stderr


def test_verdict_claims_a_difference_only_where_every_round_agrees():
    assert benchmark.verdict([1.02, 1.05, 1.01]) == 'faster in every round'
    assert benchmark.verdict([0.97, 0.99]) == 'slower in every round'
    assert benchmark.verdict([0.98, 1.04]) == 'within the spread'
    assert benchmark.verdict([1.2]) == 'one round: no spread to judge by'


def test_growth_exponent_is_the_slope_in_log_log():
    """Time per image c * pixels**a gives a, whatever c; noise-free points of two sizes
    and of four give the same slope."""
    assert benchmark.growth_exponent([(1e4, 2e-3), (4e4, 8e-3)]) == pytest.approx(1.0)
    points = [(p, 0.5 * p ** 1.25) for p in (5e4, 4e5, 1e6, 1.05e6)]
    assert benchmark.growth_exponent(points) == pytest.approx(1.25)
    assert benchmark.parse_size('800x1344:1') == (800, 1344)
    assert benchmark.size_batch('224:8', 2) == 8 and benchmark.size_batch('224', 2) == 2


@pytest.mark.slow
def test_sizes_with_their_batches_give_exponents_and_a_plot(tmp_path):
    """Two sizes, each with its batch: a table per size with that batch, the growth
    exponent of every row with its difference from Swin-T's, and the plot."""
    plot = tmp_path / 'growth.png'
    done = run_benchmark('--models', 'FocalNet-T', 'Swin-T', '--mode', 'infer',
                         '--sizes', '32x48:2', '64x96:1', '--plot', str(plot))
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert 'input 2x3x32x48, fp32' in out and 'input 1x3x64x96, fp32' in out
    growth = re.search(r'FocalNet-T\s+(-?[\d.]+) \(([+-][\d.]+) vs Swin-T\)', out)
    swin = re.search(r'^  Swin-T\s+(-?[\d.]+)$', out, re.M)
    assert growth and swin, out
    # the three numbers are each rounded to 0.01
    assert float(growth.group(2)) == pytest.approx(
        float(growth.group(1)) - float(swin.group(1)), abs=0.015 + 1e-9)
    assert plot.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


@pytest.mark.slow
def test_a_system_and_its_graph_against_swin_ts():
    """--system upernet: the UperNet of FocalNet-T and of Swin-T (mmseg's config), eager
    and as mmdeploy's graph in ONNX Runtime, each compared with Swin-T's in the same
    runtime; the test pipeline resizes the 64x64 images to 512x512."""
    pytest.importorskip('onnxruntime', reason='onnxruntime is not installed: the deploy '
                        'extra is only on the latest stack')
    done = run_benchmark('--mode', 'infer', '--system', 'upernet', '--sizes', '64',
                         '--models', 'FocalNet-T', 'Swin-T', '--runtimes', 'torch',
                         'onnxruntime')
    assert done.returncode == 0, done.stderr[-3000:]
    assert 'system: upernet (images resized by the test pipeline), configs/segmentation/' \
        'upernet_focalnet_t_512x512_160k_ade20k.py, mmseg::swin/' in done.stdout
    rows = re.findall(r'^  (\S.*?)\s+([\d.]+)\s+[\d.]+\s+(-|\d+)\s+([\d.]+)x\s+(-|[\d.]+x)$',
                      done.stdout, re.M)
    names = ['FocalNet-T', 'Swin-T', 'FocalNet-T onnxruntime', 'Swin-T onnxruntime']
    assert [(name, peak == '-') for name, _, peak, _, _ in rows] == \
        [(name, 'onnxruntime' in name) for name in names], done.stdout
    ms = {name: float(step) for name, step, _, _, _ in rows}
    assert printed_ratio_fits(float(rows[2][3]), ms['Swin-T onnxruntime'], ms[names[2]]), \
        done.stdout
    assert re.search(r'^  FocalNet-T onnxruntime vs FocalNet-T: [\d.]+x the speed$',
                     done.stdout, re.M), done.stdout


@pytest.mark.parametrize('argv', [['--mode', 'train'], ['--models', 'FocalNet-T channels-first'],
                                  ['--paths', 'autograd/nchw']])
def test_systems_only_for_cpu_inference_of_the_systems_models(argv):
    done = run_benchmark('--mode', 'infer', '--system', 'mask_rcnn', *argv)
    assert done.returncode == 2
    assert '--system mask_rcnn: inference (--mode infer) on the CPU in float32, of ' \
        'FocalNet-T, FocalTransformer-T, Swin-T, on their default paths' in done.stderr
