"""A checkpoint hook after which a killed run resumes losing nothing.

mmengine's ``CheckpointHook`` writes ``epoch_N.pth`` in place, deletes the oldest kept
checkpoint *before* writing the new one and then rewrites ``last_checkpoint`` in place:
a process killed while saving can leave a truncated checkpoint, no complete one (with
``max_keep_ckpts=1``) or an empty ``last_checkpoint``, which ``--resume`` reads as "start
from scratch". Nor does it save the random number generators, so a resumed run draws
other RoI samples and dropout masks than the run it continues.

:class:`ResumableCheckpointHook` writes every file under a temporary name and renames it
(``os.replace``, atomic on one file system), deletes old checkpoints only after the new
one and ``last_checkpoint`` are in place, and saves the torch, numpy and Python random
states of every process (rank) of the run, which each rank restores where the interrupted
run would have continued.
"""
import logging
import os
import os.path as osp
import random

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size, is_main_process
from mmengine.logging import print_log
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.runner import EpochBasedTrainLoop

from ..registry import register_hook

PARTIAL = '.partial'


def rng_state() -> dict:
    """The torch (CPU and CUDA), numpy and Python random states, as tensors and ints that
    ``torch.load(weights_only=True)`` reads."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = dict(
        torch=torch.get_rng_state(),
        numpy=dict(kind=kind, keys=torch.from_numpy(keys.astype(np.int64)), pos=pos,
                   has_gauss=has_gauss, gauss=gauss),
        python=dict(version=version, internal=torch.tensor(internal, dtype=torch.int64),
                    gauss_next=gauss_next))
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])
    n = state['numpy']
    np.random.set_state((n['kind'], n['keys'].numpy().astype(np.uint32), n['pos'],
                         n['has_gauss'], n['gauss']))
    p = state['python']
    random.setstate((p['version'], tuple(p['internal'].tolist()), p['gauss_next']))


def replace_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    with open(path + PARTIAL, 'w') as f:
        f.write(text)
    os.replace(path + PARTIAL, path)


@register_hook
class ResumableCheckpointHook(CheckpointHook):
    """``CheckpointHook`` (same arguments) with atomic files and saved random states.

    Checkpoints go to local disk through ``NAME.partial`` and ``os.replace``; other
    backends are saved as ``CheckpointHook`` saves them. Every rank's random states are
    gathered when a checkpoint is saved (``rng_states``, one entry per rank) and each
    rank's are restored before the next epoch (epoch-based loops) or the next iteration
    (iteration-based loops, after mmengine has skipped the data already seen). A run
    resumed with another number of processes restores the ranks the checkpoint has and
    says so; checkpoints of earlier versions hold rank 0's states only (``rng_state``).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._rank_states = None
        self._resumed_rng_state = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # the states gathered for this save; a save of another hook (a best checkpoint,
        # written by the main process alone) takes the main process's own
        states, self._rank_states = self._rank_states, None
        checkpoint['rng_states'] = states or [rng_state()]

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        states = checkpoint.get('rng_states')
        if states is None and 'rng_state' in checkpoint:
            states = [checkpoint['rng_state']]
        if states is None:
            return
        rank, world_size = get_rank(), get_world_size()
        if len(states) != world_size:
            what = (f'those of ranks >= {world_size} are not used' if len(states) > world_size
                    else f'ranks >= {len(states)} keep their seeded states')
            print_log(f'the checkpoint holds the random states of {len(states)} processes, '
                      f'this run has {world_size}: {what}, so the resumed run does not '
                      'continue exactly as the interrupted one', logger='current',
                      level=logging.WARNING)
        self._resumed_rng_state = states[rank] if rank < len(states) else None

    def before_train_epoch(self, runner) -> None:
        if isinstance(runner.train_loop, EpochBasedTrainLoop):
            self._restore_rng_state()

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._restore_rng_state()

    def _restore_rng_state(self) -> None:
        if self._resumed_rng_state is not None:
            set_rng_state(self._resumed_rng_state)
            self._resumed_rng_state = None

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        # every rank is here; only the main process writes the checkpoint
        self._rank_states = all_gather_object(rng_state()) if get_world_size() > 1 else None
        if not isinstance(self.file_backend, LocalBackend):
            return super()._save_checkpoint_with_step(runner, step, meta)
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = osp.join(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        stale = []
        if self.max_keep_ckpts > 0 and (not self.keep_ckpt_ids or
                                        self.keep_ckpt_ids[-1] != step):
            while len(self.keep_ckpt_ids) >= self.max_keep_ckpts:
                stale.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        runner.save_checkpoint(
            self.out_dir, filename + PARTIAL, self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler, meta=meta,
            by_epoch=self.by_epoch, backend_args=self.backend_args, **self.args)
        if not is_main_process():
            return
        os.replace(self.last_ckpt + PARTIAL, self.last_ckpt)
        replace_text(osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)
        for old in stale:
            path = osp.join(self.out_dir, self.filename_tmpl.format(old))
            if osp.isfile(path):
                os.remove(path)


def use_resumable_checkpoints(cfg) -> None:
    """Let the config's ``default_hooks.checkpoint`` (a ``CheckpointHook``) be a
    :class:`ResumableCheckpointHook` with the same arguments."""
    hook = cfg.get('default_hooks', {}).get('checkpoint')
    if hook is not None and hook.get('type') in ('CheckpointHook', 'mmengine.CheckpointHook'):
        hook['type'] = 'mmengine.ResumableCheckpointHook'
