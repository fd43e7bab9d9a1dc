"""Train a detector (mmdet) or a segmentor (mmseg) from a config.

The task follows the config's ``default_scope``. Single process::

    python tools/train.py configs/detection/mask_rcnn_focalnet_t_1x.py

Several processes: ``tools/dist_train.sh`` (torchrun) or ``tools/slurm_train.sh`` (srun).
"""
import argparse
import logging
import os
import os.path as osp
import time

import torch
import torch.distributed as dist
from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.runner import Runner

from mmfocal.engine import amp_fallback, use_resumable_checkpoints
from mmfocal.registry import toolbox_of


def parse_args():
    parser = argparse.ArgumentParser(description='Train a detector or a segmentor')
    parser.add_argument('config', help='config file')
    parser.add_argument('--work-dir', help='where logs and checkpoints go '
                        '(default: work_dirs/CONFIG_NAME)')
    parser.add_argument(
        '--resume', nargs='?', const='auto', metavar='CHECKPOINT',
        help='resume from CHECKPOINT, or without a value from the latest checkpoint '
        'of the work dir')
    parser.add_argument(
        '--amp', action='store_true',
        help='mixed-precision training (the FocalNet Mask R-CNN, Cascade and ATSS configs '
        'have it already; without a CUDA/NPU/MLU device, training falls back to float32)')
    parser.add_argument(
        '--auto-scale-lr', action='store_true',
        help='scale the lr by (GPUs x images per GPU) / auto_scale_lr.base_batch_size')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
        help='override config entries, e.g. train_cfg.max_epochs=1 '
        'model.backbone.init_cfg=None')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def init_cpu_distributed(cfg: Config, launcher: str) -> None:
    """Start the process group with gloo where there is no GPU (mmengine's own start
    calls ``torch.cuda.set_device``), keep DDP off device ids and turn SyncBN, which
    needs GPUs, into per-process BN."""
    if launcher != 'pytorch' or torch.cuda.is_available():
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


def enable_amp(cfg: Config) -> None:
    if cfg.optim_wrapper.get('type', 'OptimWrapper') in (
            'AmpOptimWrapper', 'MixedPrecisionOptimWrapper'):
        return
    if cfg.optim_wrapper.get('type', 'OptimWrapper') != 'OptimWrapper':
        raise ValueError('--amp needs optim_wrapper.type OptimWrapper or AmpOptimWrapper, '
                         f'the config has {cfg.optim_wrapper.type}')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.loss_scale = 'dynamic'


def load_config(args) -> Config:
    """The config with ``--cfg-options`` merged and its launcher and work dir set (also
    used by tools/test.py)."""
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    toolbox_of(cfg)
    cfg.launcher = args.launcher
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg


def build_runner(cfg: Config) -> Runner:
    """The runner of ``cfg`` (``import mmfocal`` lets it read mmengine's checkpoints), on
    gloo without CUDA."""
    init_cpu_distributed(cfg, cfg.launcher)
    return Runner.from_cfg(cfg)


def end_distributed() -> None:
    """Wait for every process, take the process group down and give gloo's worker
    threads half a second before the interpreter exits.

    A worker thread drops its reference to the last collective's tensors (the broadcast of
    the metrics) after the collective has returned. If Python is already shutting down by
    then, the thread cannot take the GIL and the process aborts with SIGABRT (26 of 200
    two-process CPU runs of a DDP script here; barrier and destroy alone: 2 of 200).
    ``destroy_process_group`` does not stop the threads while DDP still holds the group,
    so the pause, with the GIL released, lets them finish (0 of 200).
    """
    if not dist.is_initialized():
        return
    dist.barrier()
    dist.destroy_process_group()
    time.sleep(0.5)


def build_config(args) -> Config:
    cfg = load_config(args)
    use_resumable_checkpoints(cfg)
    if args.amp:
        enable_amp(cfg)
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise ValueError('--auto-scale-lr needs auto_scale_lr.base_batch_size in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume:
        cfg.resume, cfg.load_from = True, args.resume
    return cfg


def main():
    args = parse_args()
    cfg = build_config(args)
    # mixed precision (the FocalNet recipe) only where the device has it, else float32
    precision_warning = amp_fallback(cfg)
    runner = build_runner(cfg)
    if precision_warning:
        runner.logger.warning(precision_warning)
    runner.train()
    end_distributed()


if __name__ == '__main__':
    main()
