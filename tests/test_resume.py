"""A run killed with SIGKILL mid-epoch resumes from its last checkpoint and ends with the
weights of an uninterrupted run (random augmentations off, CPU training deterministic);
a checkpoint cut short by the kill is never the one ``last_checkpoint`` names."""
import contextlib
import glob
import os
import os.path as osp
import signal
import socket
import subprocess
import sys
import time
from collections import deque

import pytest
import torch
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.logging import MessageHub

from mmfocal.engine import ResumableCheckpointHook
from mmfocal.compat import allow_mmengine_checkpoints, load_weights


from _helpers import ROOT, write_demo_data

DET_CONFIG = """
_base_ = '{root}/configs/detection/demo_mask_rcnn_focalnet.py'
data_root = '{data}/'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(96, 96), keep_ratio=True),  # no RandomFlip
    dict(type='PackDetInputs')]
train_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = val_cfg = val_evaluator = None
test_dataloader = test_cfg = test_evaluator = None
custom_hooks = []  # the demo's FocalMapsHook draws over a validation image
train_cfg = dict(max_epochs=2)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1, max_keep_ckpts=1))
"""

SEG_CONFIG = """
_base_ = '{root}/configs/segmentation/demo_upernet_focalnet.py'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='Resize', scale=(64, 64), keep_ratio=False),  # no random resize/crop/flip
    dict(type='PackSegInputs')]
model = dict(data_preprocessor=dict(size=(64, 64)))
train_dataloader = dict(  # 2 images: the pyramid pooling's BN needs more than one value
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root='{data}', pipeline=train_pipeline))
val_dataloader = val_cfg = val_evaluator = None
test_dataloader = test_cfg = test_evaluator = None
custom_hooks = []  # the demo's FocalMapsHook draws over a validation image
train_cfg = dict(max_iters=6)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2, max_keep_ckpts=1))
"""


def demo_data(tmp_path_factory, task, num_train=4, size=96):
    """``num_train`` training images of ``size`` pixels (make_demo_data); returns the root
    of the COCO or ADE20K layout. In a folder of the base temporary directory, not the
    test's: mmengine formats the config (yapf) for the log and every checkpoint, which
    takes seconds longer once the data path does not fit on a line."""
    return write_demo_data(tmp_path_factory.mktemp(task), task, num_train, 1, size)


def train_command(config, work_dir, *extra, processes=1):
    """tools/train.py, or with ``processes`` > 1 torchrun's processes on the CPU (gloo)."""
    if processes == 1:
        script = [sys.executable, 'tools/train.py']
    else:
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            port = s.getsockname()[1]
        script = [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={processes}',
                  '--master_addr=127.0.0.1', f'--master_port={port}', 'tools/train.py',
                  '--launcher', 'pytorch']
    return [*script, str(config), '--work-dir', str(work_dir), *extra]


def process_env(processes):
    """One thread per process where several share the machine."""
    return None if processes == 1 else dict(os.environ, OMP_NUM_THREADS='1')


def run_to_end(config, work_dir, *extra, processes=1):
    result = subprocess.run(train_command(config, work_dir, *extra, processes=processes),
                            cwd=ROOT, text=True, capture_output=True, timeout=900,
                            env=process_env(processes))
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout + result.stderr


def kill_training(work_dir):
    """SIGKILL every process training into ``work_dir`` (torchrun and its workers, which
    run in sessions of their own)."""
    for pid in os.listdir('/proc'):
        try:
            with open(f'/proc/{pid}/cmdline', 'rb') as f:
                args = f.read().split(b'\0')
        except OSError:  # not a process, or it has ended
            continue
        if b'tools/train.py' in args and str(work_dir).encode() in args:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)


def kill_after(config, work_dir, marker, processes=1):
    """Start training, SIGKILL its processes once ``marker`` is in its log and a checkpoint
    exists."""
    log_path = osp.join(work_dir, 'killed.log')
    os.makedirs(work_dir, exist_ok=True)
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(train_command(config, work_dir, processes=processes), cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT,
                                env=process_env(processes))
        deadline = time.time() + 600
        while proc.poll() is None and time.time() < deadline:
            with open(log_path) as f:
                text = f.read()
            if marker in text and osp.exists(osp.join(work_dir, 'last_checkpoint')):
                proc.send_signal(signal.SIGKILL)  # torchrun first, so it cannot exit 1
                kill_training(work_dir)
                break
            time.sleep(0.02)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, open(log_path).read()[-4000:]


def load(path):
    allow_mmengine_checkpoints()
    return load_weights(path)


def assert_same_training_state(a, b):
    assert a['meta']['epoch'] == b['meta']['epoch'] and a['meta']['iter'] == b['meta']['iter']
    assert a['state_dict'].keys() == b['state_dict'].keys()
    for key in a['state_dict']:
        assert torch.equal(a['state_dict'][key], b['state_dict'][key]), key
    for x, y in zip(a['optimizer']['state'].values(), b['optimizer']['state'].values()):
        for name in x:
            assert torch.equal(torch.as_tensor(x[name]), torch.as_tensor(y[name])), name
    assert a['param_schedulers'] == b['param_schedulers']
    for key in ('epoch', 'iter', 'keep_ckpt_ids'):
        assert a['message_hub']['runtime_info'][key] == b['message_hub']['runtime_info'][key]


@pytest.mark.slow
@pytest.mark.parametrize('task', ['detection', 'segmentation'])
def test_killed_run_resumes_to_the_uninterrupted_weights(tmp_path, tmp_path_factory, task):
    if task == 'detection':
        data = demo_data(tmp_path_factory, 'det')
        text, marker, last = DET_CONFIG, 'Epoch(train) [2][1/4]', 'epoch_2.pth'
        resumed_line, first_after = 'resumed epoch: 1, iter: 4', 'Epoch(train) [2][1/4]'
    else:
        data = demo_data(tmp_path_factory, 'seg', size=64)
        text, marker, last = SEG_CONFIG, 'Iter(train) [3/6]', 'iter_6.pth'
        resumed_line, first_after = 'resumed epoch: 0, iter: 2', 'Iter(train) [3/6]'
    config = tmp_path / 'config.py'
    config.write_text(text.format(root=ROOT, data=data))
    whole, killed = tmp_path / 'whole', tmp_path / 'killed'
    run_to_end(config, whole)
    kill_after(config, killed, marker)
    assert not osp.exists(killed / last)  # killed before the end
    with open(killed / 'last_checkpoint') as f:
        saved = f.read().strip()
    assert osp.basename(saved) == ('epoch_1.pth' if task == 'detection' else 'iter_2.pth')
    log = run_to_end(config, killed, '--resume')
    assert resumed_line in log and first_after in log
    assert_same_training_state(load(whole / last), load(killed / last))
    assert sorted(os.listdir(killed)).count(last) == 1
    assert not glob.glob(str(killed / '*.partial'))


@pytest.mark.slow
def test_killed_two_process_run_resumes_to_the_uninterrupted_weights(tmp_path, tmp_path_factory):
    """Two gloo processes with different seeds per rank (each draws its own RoI samples):
    killed in the second epoch and resumed, they end with the uninterrupted run's weights,
    since every rank's random states were saved and restored, not only rank 0's."""
    data = demo_data(tmp_path_factory, 'det', num_train=8)
    config = tmp_path / 'config.py'
    config.write_text(DET_CONFIG.format(root=ROOT, data=data) +
                      'randomness = dict(seed=0, diff_rank_seed=True)\n')
    whole, killed = tmp_path / 'whole', tmp_path / 'killed'
    run_to_end(config, whole, processes=2)
    kill_after(config, killed, 'Epoch(train) [2][1/4]', processes=2)
    assert not osp.exists(killed / 'epoch_2.pth')
    saved = load(killed / 'epoch_1.pth')
    assert len(saved['rng_states']) == 2
    assert not torch.equal(saved['rng_states'][0]['torch'], saved['rng_states'][1]['torch'])
    log = run_to_end(config, killed, '--resume', processes=2)
    assert 'resumed epoch: 1, iter: 4' in log and 'Epoch(train) [2][1/4]' in log
    assert_same_training_state(load(whole / 'epoch_2.pth'), load(killed / 'epoch_2.pth'))


def test_each_rank_restores_its_own_random_states(monkeypatch):
    """A checkpoint of two ranks read by one process: rank 0's states are restored and the
    mismatch is logged; a checkpoint of an earlier version (``rng_state``, rank 0 only) is
    restored without a message."""
    from mmfocal.engine import hooks
    messages = []
    monkeypatch.setattr(hooks, 'print_log', lambda msg, **kwargs: messages.append(msg))
    torch.manual_seed(1)
    rank0 = hooks.rng_state()
    torch.manual_seed(2)
    rank1 = hooks.rng_state()
    for checkpoint, logged in (({'rng_states': [rank0, rank1]}, 1), ({'rng_state': rank0}, 1)):
        hook = ResumableCheckpointHook(interval=1)
        torch.manual_seed(3)
        hook.after_load_checkpoint(None, checkpoint)
        hook.before_train_iter(None, 0)
        assert torch.equal(torch.get_rng_state(), rank0['torch'])
        assert len(messages) == logged
    assert 'random states of 2 processes, this run has 1: those of ranks >= 1 are not used' \
        in messages[0]


class DiesWhileSaving:
    """A runner whose process dies half-way through writing the second checkpoint."""

    def __init__(self, work_dir):
        self.work_dir = work_dir
        self.message_hub = MessageHub.get_instance('mmfocal-test-dies-while-saving')
        self.saves = 0

    def save_checkpoint(self, out_dir, filename, *args, **kwargs):
        self.saves += 1
        data = torch.arange(1000.)
        with open(osp.join(out_dir, filename), 'wb') as f:
            if self.saves == 1:
                torch.save({'weights': data}, f)
            else:
                f.write(b'PK\x03\x04 cut short')
                raise SystemExit('killed')


@pytest.mark.parametrize('hook_type, survives', [
    (ResumableCheckpointHook, True),
    (CheckpointHook, False),  # mmengine's: the old one deleted, the new one cut short
])
def test_checkpoint_cut_short_is_never_last_checkpoint(tmp_path, hook_type, survives):
    runner = DiesWhileSaving(str(tmp_path))
    hook = hook_type(interval=1, max_keep_ckpts=1)
    hook.out_dir, hook.file_backend = str(tmp_path), LocalBackend()
    hook.keep_ckpt_ids = deque(maxlen=1)
    hook._save_checkpoint_with_step(runner, 1, {})
    with pytest.raises(SystemExit):
        hook._save_checkpoint_with_step(runner, 2, {})
    with open(tmp_path / 'last_checkpoint') as f:
        named = f.read().strip()
    assert named == str(tmp_path / 'epoch_1.pth')
    if survives:
        torch.testing.assert_close(torch.load(named)['weights'], torch.arange(1000.))
        assert not osp.exists(tmp_path / 'epoch_2.pth')
    else:
        assert not osp.exists(named)
