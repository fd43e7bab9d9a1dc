"""What the tests share: the repository root, the interpreter, running a command, the
FocalNet variants of configs/_base_/models/focalnet.py and the backbones' output shapes."""
import functools
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
PYTHON = sys.executable


def run_checked(args, cwd=ROOT, env=None, timeout=900) -> subprocess.CompletedProcess:
    """``args`` in ``cwd`` (``env``: the whole environment, None: this process's); a
    non-zero exit fails the test with the command and the tails of both outputs (assertion
    messages would cut them to a few lines)."""
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    if result.returncode:
        pytest.fail(f'{" ".join(map(str, args))}\nexited with {result.returncode}\n'
                    f'--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-6000:]}',
                    pytrace=False)
    return result


@functools.lru_cache(maxsize=None)
def focalnet_variants() -> dict:
    """{'t_srf': FocalNet keyword arguments, ...}: the authors' variants as
    configs/_base_/models/focalnet.py defines them (ImageNet focal windows)."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, 'configs', '_base_', 'models', 'focalnet.py'))
    return {name[len('focalnet_'):]: {k: v for k, v in variant.items() if k != 'type'}
            for name, variant in cfg.items() if name.startswith('focalnet_')}


def write_demo_data(out, task, num_train, num_val, size) -> str:
    """The demo generator's data (tools/dataset_converters/make_demo_data.py) written to
    OUT: ``num_train`` and ``num_val`` images of ``size`` pixels; returns the root of the
    COCO layout (task 'det') or of the ADE20K one ('seg')."""
    sys.path.insert(0, osp.join(ROOT, 'tools', 'dataset_converters'))
    import make_demo_data
    make_demo_data.main(['--out', str(out), '--task', task, '--num-train', str(num_train),
                         '--num-val', str(num_val), '--size', str(size)])
    return osp.join(str(out), 'coco') if task == 'det' else osp.join(
        str(out), 'ade', 'ADEChallengeData2016')


def expected_shapes(batch, h, w, dims, out_indices=(0, 1, 2, 3)):
    """(B, C_i, H_i, W_i) of a four-stage backbone's outputs (patch size 4, widths doubling)
    for a (batch, C, h, w) input."""
    side = lambda s, i: -(-s // 2**(i + 2))  # noqa: E731  (ceil)
    return [(batch, dims * 2**i, side(h, i), side(w, i)) for i in out_indices]
