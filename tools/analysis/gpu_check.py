"""The GPU check of mmfocal's backbones in one run of at most ``--budget`` seconds.

Sections, in order of importance, each in its own process, timed, its output written to
``OUT/NN_name.txt`` (OUT: the log folder, ``--out``) and printed; a section that fails or
runs out of time does not stop the others, and one that would start with less than a
minute left is skipped:

1. ``env``: nvidia-smi, the versions of Python, torch, CUDA, cuDNN and the OpenMMLab
   packages;
2. ``tests``: the backbones' CUDA tests (outputs and float64 gradients against the CPU on
   every compute path; autocast steps in bfloat16 and float16 finite and close to
   float32) and the compute-path tests;
3. to 5. the training tables of ``benchmark.py`` at 512x768 batch 2 and 224 batch 8 and
   its inference table at 224 batch 8 (float32, bfloat16 and float16 autocast; every
   compute path; against Swin-T, with peak memory);
6. ``convs``: forward, input- and weight-gradient times of FocalNet-T's depthwise focal
   convolutions, per layout and precision;
7. and 8. the 512x768 training table again with ``cudnn.benchmark``, and the inference
   table at 512x768.

The first section's output goes to ``OUT/summary.txt`` instead, followed at the end by
every section's status and time, so that a run leaves 8 files: the summary and 7 logs.
``--dry-run`` runs every section on the CPU with tiny sizes, one round and one step, no
float16 and longer time limits, to check the script itself.

The GPU machine needs torch with CUDA, numpy and a clone of mmfocal. Run the check through
``tools/analysis/gpu_check.sh``, which first installs the OpenMMLab packages the machine
lacks from wheels downloaded beforehand (no network needed there).
"""
import argparse
import os
import os.path as osp
import signal
import subprocess
import sys
import time

SCRIPT = osp.abspath(__file__)
ROOT = osp.dirname(osp.dirname(osp.dirname(SCRIPT)))
PYTHON = sys.executable
BENCHMARK = [PYTHON, 'tools/analysis/benchmark.py']
# benchmark.py's compute paths (that module imports torch, which this one does not)
PATHS = ['recompute/nhwc', 'recompute/nchw', 'autograd/nhwc', 'autograd/nchw']
TRAIN_MODELS = ['FocalNet-T', 'FocalNet-T channels-first', 'FocalTransformer-T', 'Swin-T']
# a section is not started with less time left than this (seconds)
MIN_SECTION = 60
# the dry run's section time limits, as a multiple of the GPU's (sized for a CPU of 2 cores,
# one process per precision)
DRY_RUN_SLOWER = 20


def benchmark(mode, size, batch, paths, models, args, *extra):
    """A benchmark.py command line for one table per precision (the dry run leaves out
    float16, whose autocast on the CPU takes a minute a step)."""
    steps = 1 if args.dry_run else (10 if mode == 'train' else 20)
    precisions = ['fp32', 'bf16'] + ([] if args.dry_run else ['fp16'])
    return [*BENCHMARK, '--mode', mode, '--sizes', size, '--batch', str(batch),
            '--device', args.device, '--precisions', *precisions,
            '--paths', *paths, '--models', *models, '--rounds', '1', '--steps', str(steps),
            '--warmup', '1' if args.dry_run else '3', *extra]


def sections(args):
    """[(name, time limit in seconds, command)], most important first."""
    large, small = ('32x48', '32') if args.dry_run else ('512x768', '224')
    batch_large, batch_small = (1, 1) if args.dry_run else (2, 8)
    infer_paths = PATHS[:2]
    infer_models = ['FocalNet-T', 'FocalTransformer-T', 'Swin-T']
    tests = [PYTHON, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', 'tests/test_base.py',
             'tests/test_focalnet.py', 'tests/test_focal_transformer.py', '-k',
             'cuda or amp_step or compute_path']
    return [
        ('env', 30, ['bash', '-c', f'nvidia-smi; {PYTHON} {SCRIPT} --env']),
        ('tests', 150, tests),
        (f'train_{large}', 150, benchmark('train', large, batch_large, PATHS, TRAIN_MODELS,
                                          args)),
        (f'train_{small}', 120, benchmark('train', small, batch_small, PATHS, TRAIN_MODELS,
                                          args)),
        (f'infer_{small}', 60, benchmark('infer', small, batch_small, infer_paths,
                                         infer_models, args)),
        ('convs', 40, [PYTHON, SCRIPT, '--convs',
                       '--device', args.device, *(['--dry-run'] if args.dry_run else [])]),
        (f'train_{large}_cudnn_benchmark', 90, benchmark(
            'train', large, batch_large, PATHS, ['FocalNet-T', 'Swin-T'], args,
            '--cudnn-benchmark')),
        (f'infer_{large}', 60, benchmark('infer', large, batch_large, infer_paths,
                                         infer_models, args)),
    ]


def run_section(command, limit: float, log_path: str) -> str:
    """Run ``command`` in its own process group for at most ``limit`` seconds, its output
    to ``log_path`` and then to stdout; its status: 'ok', 'exit N' or 'timed out'."""
    with open(log_path, 'w') as log:
        log.write('$ ' + ' '.join(command) + '\n')
        log.flush()
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            code = process.wait(timeout=limit)
            status = 'ok' if code == 0 else f'exit {code}'
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the benchmark's workers too
            process.wait()
            status = f'timed out after {limit:.0f} s'
    with open(log_path) as log:
        print(log.read(), flush=True)
    return status


def check(args) -> int:
    """Every section within the budget; 0 when all of them passed."""
    os.makedirs(args.out, exist_ok=True)
    start = time.monotonic()
    summary = []
    for number, (name, limit, command) in enumerate(sections(args), 1):
        limit *= DRY_RUN_SLOWER if args.dry_run else 1
        left = args.budget - (time.monotonic() - start)
        if left < min(MIN_SECTION, limit):
            status, seconds = 'skipped: out of time', 0.
        else:
            print(f'===== {name} (at most {min(limit, left):.0f} s)', flush=True)
            began = time.monotonic()
            log = 'summary.txt' if number == 1 else f'{number:02d}_{name}.txt'
            status = run_section(command, min(limit, left), osp.join(args.out, log))
            seconds = time.monotonic() - began
        summary.append(f'{name:36s} {seconds:6.1f} s  {status}')
        print(f'===== {summary[-1]}', flush=True)
    summary.append(f'{"total":36s} {time.monotonic() - start:6.1f} s')
    with open(osp.join(args.out, 'summary.txt'), 'a') as f:
        f.write('\n' + '\n'.join(summary) + '\n')
    print('\n'.join(summary))
    return 0 if all(line.endswith(' ok') for line in summary[:-1]) else 1


def print_versions() -> None:
    """Python, torch, CUDA, cuDNN, the GPU and the packages the check imports."""
    import importlib
    import torch
    print('python', sys.version.split()[0], '| torch', torch.__version__, '| CUDA',
          torch.version.cuda, '| cuDNN', torch.backends.cudnn.version())
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        print(f'{props.name}, {props.total_memory / 2**30:.0f} GiB, '
              f'{props.multi_processor_count} SMs, capability {props.major}.{props.minor}')
    for name in ('numpy', 'triton', 'mmengine', 'mmcv', 'mmdet', 'mmfocal'):
        try:
            module = importlib.import_module(name)
            print(name, getattr(module, '__version__', '?'), module.__file__)
        except Exception as error:  # reported, not raised: the check goes on without it
            print(name, 'not importable:', error)


def conv_time(x, weight, grad, mask) -> float:
    """Median milliseconds of the depthwise convolution of x by weight (``mask`` all
    False) or of the gradients ``mask`` asks for (input, weight, bias)."""
    from torch.utils.benchmark import Timer
    import torch
    import torch.nn.functional as F
    groups, pad = weight.shape[0], weight.shape[-1] // 2
    if any(mask):
        def call():
            torch.ops.aten.convolution_backward(grad, x, weight, None, [1, 1], [pad, pad],
                                                [1, 1], False, [0, 0], groups, mask)
    else:
        def call():
            F.conv2d(x, weight, padding=pad, groups=groups)
    timer = Timer('call()', globals={'call': call})
    return timer.blocked_autorange(min_run_time=0.05).median * 1e3


def conv_timings(device: str, dry_run: bool) -> None:
    """Milliseconds of FocalNet-T's stage-0 focal convolutions at 512x768 batch 2 (96
    channels, 128x192, kernels 9 and 11): forward, input gradient and weight gradient,
    per dtype and layout, as PyTorch's convolution runs them."""
    import torch
    shape = (1, 96, 16, 24) if dry_run else (2, 96, 128, 192)
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        for layout, name in ((torch.contiguous_format, 'nchw'), (torch.channels_last, 'nhwc')):
            for kernel in (9, 11):
                x = torch.randn(shape, device=device, dtype=dtype)
                x = x.contiguous(memory_format=layout)
                weight = torch.randn(shape[1], 1, kernel, kernel, device=device, dtype=dtype)
                weight = weight.contiguous(memory_format=layout)
                line = f'{str(dtype)[6:]:9s} {name} k{kernel:<3d}'
                try:
                    times = [conv_time(x, weight, torch.randn_like(x), mask) for mask in (
                        [False] * 3, [True, False, False], [False, True, False])]
                except RuntimeError as error:
                    print(f'{line} failed: {error}', flush=True)
                    continue
                print(f'{line} forward {times[0]:8.3f} ms   input grad {times[1]:8.3f} ms   '
                      f'weight grad {times[2]:8.3f} ms', flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--dry-run', action='store_true',
                        help='on the CPU, tiny sizes, one step: checks the script')
    parser.add_argument('--budget', type=float, default=420,
                        help='seconds for all sections together (default 420)')
    parser.add_argument('--out', default=os.environ.get('OUT') or 'work_dirs/gpu_check',
                        help='folder of the logs (default: the folder named by the OUT '
                        'environment variable, if set, else work_dirs/gpu_check)')
    parser.add_argument('--env', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--convs', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--device', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.device = args.device or ('cpu' if args.dry_run else 'cuda')
    args.out = osp.abspath(args.out)
    if args.env:
        print_versions()
        return
    if args.convs:
        conv_timings(args.device, args.dry_run)
        return
    sys.exit(check(args))


if __name__ == '__main__':
    main()
