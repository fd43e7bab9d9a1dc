"""What ``tools/train.py`` and ``tools/test.py`` share: the config as the command line
changes it, the runner (on gloo where there is no GPU) and the end of a distributed run."""
import logging
import os.path as osp
import time
from typing import Optional

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.runner import Runner

from ..registry import toolbox_of


def load_config(path: str, *, cfg_options: Optional[dict] = None, launcher: str = 'none',
                work_dir: Optional[str] = None) -> Config:
    """The config at ``path`` with ``cfg_options`` (``--cfg-options``) merged, its
    launcher set and its work dir: ``work_dir``, the config's own, or
    work_dirs/CONFIG_NAME. Raises where the config is neither mmdet's nor mmseg's."""
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    toolbox_of(cfg)
    cfg.launcher = launcher
    cfg.work_dir = work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg


def enable_amp(cfg: Config) -> None:
    """``--amp``: the config's OptimWrapper as mmengine's AmpOptimWrapper (dynamic loss
    scale); a mixed-precision wrapper stays as it is."""
    if cfg.optim_wrapper.get('type', 'OptimWrapper') in (
            'AmpOptimWrapper', 'MixedPrecisionOptimWrapper'):
        return
    if cfg.optim_wrapper.get('type', 'OptimWrapper') != 'OptimWrapper':
        raise ValueError('--amp needs optim_wrapper.type OptimWrapper or AmpOptimWrapper, '
                         f'the config has {cfg.optim_wrapper.type}')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.loss_scale = 'dynamic'


def init_cpu_distributed(cfg: Config) -> None:
    """Start the process group with gloo where there is no GPU (mmengine's own start
    calls ``torch.cuda.set_device``), keep DDP off device ids and turn SyncBN, which
    needs GPUs, into per-process BN."""
    if cfg.launcher != 'pytorch' or torch.cuda.is_available():
        return
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    cfg.env_cfg.dist_cfg = dict(backend='gloo')
    cfg.model_wrapper_cfg = dict(
        type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    if _sync_bn_to_bn(cfg.model):
        print_log('no GPU: the SyncBN layers of the config run as BN in each process',
                  logger='current', level=logging.WARNING)


def _sync_bn_to_bn(node) -> bool:
    """Replace ``type='SyncBN'`` by ``'BN'`` in a config tree; True if any was found."""
    found = False
    if isinstance(node, dict):
        if node.get('type') == 'SyncBN':
            node['type'], found = 'BN', True
        for value in node.values():
            found = _sync_bn_to_bn(value) or found
    elif isinstance(node, (list, tuple)):
        for value in node:
            found = _sync_bn_to_bn(value) or found
    return found


def build_runner(cfg: Config) -> Runner:
    """The runner of ``cfg`` (``import mmfocal`` lets it read mmengine's checkpoints), on
    gloo without CUDA."""
    init_cpu_distributed(cfg)
    return Runner.from_cfg(cfg)


def end_distributed() -> None:
    """Wait for every process, take the process group down and give gloo's worker
    threads half a second before the interpreter exits.

    A worker thread drops its reference to the last collective's tensors (the broadcast of
    the metrics) after the collective has returned. If Python is already shutting down by
    then, the thread cannot take the GIL and the process aborts with SIGABRT (26 of 200
    two-process CPU runs of a DDP script; barrier and destroy alone: 2 of 200).
    ``destroy_process_group`` does not stop the threads while DDP still holds the group,
    so the pause, with the GIL released, lets them finish (0 of 200).
    """
    if not dist.is_initialized():
        return
    dist.barrier()
    dist.destroy_process_group()
    time.sleep(0.5)
