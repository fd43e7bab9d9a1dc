"""Evaluate a checkpoint with the config's test dataset and metric (COCO AP for mmdet
configs, mIoU for mmseg configs, top-1 accuracy for mmpretrain configs: the task follows the
config's ``default_scope``)::

    python tools/test.py configs/detection/mask_rcnn_focalnet_t_1x.py CHECKPOINT

CHECKPOINT is one written by tools/train.py, or one of the authors' released weights
brought to mmfocal's layout by tools/model_converters/convert_focalnet.py.
Several processes: ``tools/dist_test.sh`` (torchrun) or ``tools/slurm_test.sh`` (srun).
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction

from mmfocal.engine import build_runner, end_distributed, load_config


def parse_args():
    parser = argparse.ArgumentParser(
        description='Evaluate a detector, a segmentor or an image classifier')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where the evaluation log and metrics go '
                        '(default: work_dirs/CONFIG_NAME)')
    parser.add_argument('--show-dir', help='draw the predictions of every image into '
                        'WORK_DIR/TIMESTAMP/SHOW_DIR')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
        help='override config entries, e.g. test_dataloader.batch_size=2')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def show_predictions(cfg: Config, task: str, show_dir: str) -> None:
    """Turn on the visualisation hook so that it draws every test image."""
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        raise ValueError('--show-dir needs default_hooks.visualization in the config')
    hook.interval = 1
    if task == 'mmpretrain':  # its hook is switched on by enable and writes to out_dir
        hook.enable, hook.out_dir = True, show_dir
        return
    hook.draw = True
    if task == 'mmdet':
        hook.test_out_dir = show_dir
    else:  # mmseg's hook writes through the visualizer
        cfg.visualizer.save_dir = show_dir


def build_config(args) -> Config:
    cfg = load_config(args.config, cfg_options=args.cfg_options, launcher=args.launcher,
                      work_dir=args.work_dir)
    if not osp.isfile(args.checkpoint) and '://' not in args.checkpoint \
            and not args.checkpoint.startswith('hf-hub:'):
        raise FileNotFoundError(f'checkpoint not found: {args.checkpoint}')
    cfg.load_from = args.checkpoint
    if args.show_dir:
        show_predictions(cfg, cfg.default_scope, args.show_dir)
    return cfg


def main():
    args = parse_args()
    build_runner(build_config(args)).test()
    end_distributed()


if __name__ == '__main__':
    main()
