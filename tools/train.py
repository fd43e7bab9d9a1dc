"""Train a detector (mmdet), a segmentor (mmseg) or an image classifier (mmpretrain) from a
config.

The task follows the config's ``default_scope``. Single process::

    python tools/train.py configs/detection/mask_rcnn_focalnet_t_1x.py

Several processes: ``tools/dist_train.sh`` (torchrun) or ``tools/slurm_train.sh`` (srun).
"""
import argparse
import os

from mmengine.config import Config, DictAction

from mmfocal.engine import (amp_fallback, build_runner, enable_amp, end_distributed,
                            load_config, use_resumable_checkpoints)


def parse_args():
    parser = argparse.ArgumentParser(
        description='Train a detector, a segmentor or an image classifier')
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


def build_config(args) -> Config:
    cfg = load_config(args.config, cfg_options=args.cfg_options, launcher=args.launcher,
                      work_dir=args.work_dir)
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
