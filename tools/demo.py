"""The out-of-the-box demo: data, training, evaluation and pictures on a CPU.

    python tools/demo.py det    # FocalNet Mask R-CNN (mmdet), COCO box and mask AP
    python tools/demo.py seg    # Focal Transformer UperNet (mmseg), mIoU
    python tools/demo.py cls    # the Keras tutorial's FocalNet (mmpretrain) on real
                                # handwritten digits, top-1 accuracy

Steps: a dataset writer of tools/dataset_converters/ writes data/demo/ (make_demo_data.py:
synthetic shapes in the COCO and ADE20K layouts; make_digits_data.py: scikit-learn's digits
as image folders), tools/train.py trains the demo config, tools/test.py evaluates the last
checkpoint on the demo's validation (cls: held-out test) split, drawing the predictions of
the dense demos (``--show-dir``), and tools/analysis/visualize_focal.py draws what the
backbone learned (cls: the tutorial's picture, the gates and modulator norm of the middle
stage's last block, for ``--num-pictures`` test digits). Everything goes under
``--work-dir`` (default work_dirs/demo_TASK); the figures and the time of every step are
printed at the end and written to ``summary.json`` there, with the run's date, commit, CPU
and torch. ``--record`` also keeps them in docs/demo_results.json, the record of the
README's demo table (tests/test_docs_commands.py holds the table to it).
"""
import argparse
import datetime
import glob
import json
import os
import os.path as osp
import platform
import subprocess
import sys
import time

from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
RESULTS = osp.join(ROOT, 'docs', 'demo_results.json')
TASKS = {
    'det': dict(config='configs/detection/demo_mask_rcnn_focalnet.py',
                images='coco/val2017/*.jpg', picture_args=['--stage', '1', '2', '3'],
                num_pictures=2, show_predictions=True,
                metrics={'box mAP': 'coco/bbox_mAP', 'mask mAP': 'coco/segm_mAP',
                         'box mAP@0.5': 'coco/bbox_mAP_50'}),
    'seg': dict(config='configs/segmentation/demo_upernet_focal_transformer.py',
                images='ade/ADEChallengeData2016/images/validation/*.jpg', picture_args=[],
                num_pictures=2, show_predictions=True,
                metrics={'mIoU (%)': 'mIoU', 'mAcc (%)': 'mAcc', 'aAcc (%)': 'aAcc'}),
    # the tutorial's TrainMonitor picture: the middle one of 3 stages
    'cls': dict(config='configs/classification/demo_focalnet_digits.py',
                images='digits/test/*/*.png', num_pictures=5, show_predictions=False,
                picture_args=['--stage', '1', '--style', 'tutorial', '--display-size', '96'],
                metrics={'top-1 (%)': 'accuracy/top1'}),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('task', choices=sorted(TASKS))
    parser.add_argument('--config', help='demo config (default: the task\'s)')
    parser.add_argument('--work-dir', help='default work_dirs/demo_TASK (relative paths '
                        'here are relative to the repository root)')
    parser.add_argument('--data-root', default='data/demo')
    parser.add_argument('--num-train', type=int, default=320,
                        help='synthetic training images (det, seg)')
    parser.add_argument('--num-val', type=int, default=80,
                        help='synthetic validation images (det, seg)')
    parser.add_argument('--num-pictures', type=int,
                        help='validation images drawn by visualize_focal (FocalNet; '
                        'default det 2, cls 5, spread over the classes for cls)')
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='passed to tools/train.py and tools/test.py')
    parser.add_argument('--record', action='store_true',
                        help='keep the figures, time, date, commit and CPU of this run in '
                        'docs/demo_results.json (the README\'s demo table)')
    return parser.parse_args(argv)


def run(step: str, cmd, timings: dict) -> None:
    print(f'\n==> {step}: {" ".join(cmd)}', flush=True)
    start = time.time()
    subprocess.run(cmd, cwd=ROOT, check=True)
    timings[step] = round(time.time() - start, 1)


def data_command(task: str, args) -> list:
    """The dataset writer of ``task`` (under tools/dataset_converters) with its arguments."""
    if task == 'cls':
        return ['tools/dataset_converters/make_digits_data.py', '--out',
                osp.join(args.data_root, 'digits')]
    return ['tools/dataset_converters/make_demo_data.py', '--out', args.data_root,
            '--task', task, '--num-train', str(args.num_train), '--num-val', str(args.num_val)]


def data_options(task: str, data_root: str) -> list:
    """--cfg-options that point the demo config at ``data_root``."""
    if task == 'cls':
        return [f'{loader}.dataset.data_root={osp.join(data_root, "digits")}'
                for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    if task == 'det':
        root = osp.join(data_root, 'coco') + '/'
        return [f'train_dataloader.dataset.data_root={root}',
                f'val_dataloader.dataset.data_root={root}',
                f'test_dataloader.dataset.data_root={root}',
                f'val_evaluator.ann_file={root}annotations/instances_val2017.json',
                f'test_evaluator.ann_file={root}annotations/instances_val2017.json']
    root = osp.join(data_root, 'ade', 'ADEChallengeData2016')
    return [f'{loader}.dataset.data_root={root}'
            for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')]


def test_metrics(work_dir: str, since: float) -> dict:
    """The metrics tools/test.py wrote to WORK_DIR/TIMESTAMP/TIMESTAMP.json."""
    logs = [p for p in glob.glob(osp.join(work_dir, '*', '*.json'))
            if osp.getmtime(p) >= since]
    if not logs:
        raise RuntimeError(f'tools/test.py wrote no metrics file under {work_dir}')
    with open(max(logs, key=osp.getmtime)) as f:
        return json.loads(f.read().strip().splitlines()[-1])


def picture_images(pattern: str, count: int) -> list:
    """``count`` images matching ``pattern``, spread evenly over them in the order of their
    file names (the digits' folders are classes, so the pictures show several classes)."""
    images = sorted(glob.glob(pattern), key=lambda p: (osp.basename(p), p))
    if count >= len(images):
        return images
    return [images[round(k * len(images) / count)] for k in range(count)]


def machine() -> dict:
    """Where a run happened: date (UTC), commit of the checkout, CPU and its cores, torch."""
    import torch
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT,
                            capture_output=True, text=True)
    cpu = platform.processor() or platform.machine()
    if osp.exists('/proc/cpuinfo'):
        with open('/proc/cpuinfo') as f:
            names = [line.split(':', 1)[1].strip() for line in f if line.startswith('model name')]
        cpu = names[0] if names else cpu
    return dict(date=datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d'),
                commit=commit.stdout.strip() if commit.returncode == 0 else None,
                cpu=cpu, cores=len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity')
                else os.cpu_count(), torch=torch.__version__)


def record(summary: dict) -> None:
    """Keep a run's figures, time and where it ran in docs/demo_results.json, by task."""
    results = {}
    if osp.exists(RESULTS):
        with open(RESULTS) as f:
            results = json.load(f)
    keep = ('config', 'figures', 'date', 'commit', 'cpu', 'cores', 'torch')
    results[summary['task']] = dict({k: summary[k] for k in keep},
                                    seconds=summary['seconds']['total'])
    with open(RESULTS, 'w') as f:
        json.dump(dict(sorted(results.items())), f, indent=2)
        f.write('\n')


def shown(path: str) -> str:
    """``path`` relative to the repository root when it lies inside it."""
    rel = osp.relpath(path, ROOT)
    return path if rel.startswith('..') else rel


def main(argv=None) -> dict:
    args = parse_args(argv)
    task = TASKS[args.task]
    config = args.config or task['config']
    work_dir = args.work_dir or osp.join('work_dirs', f'demo_{args.task}')
    py, timings, start = sys.executable, {}, time.time()
    run('data', [py, *data_command(args.task, args)], timings)
    options = data_options(args.task, args.data_root) + args.cfg_options
    run('train', [py, 'tools/train.py', config, '--work-dir', work_dir,
                  '--cfg-options', *options], timings)
    with open(osp.join(ROOT, work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    tested = time.time()
    show = []
    predictions = None
    if task['show_predictions']:
        # Absolute: mmdet puts a relative --show-dir under WORK_DIR/TIMESTAMP, mmseg under '.'
        predictions = osp.join(ROOT, work_dir, 'predictions')
        show = ['--show-dir', predictions]
    run('test', [py, 'tools/test.py', config, checkpoint, '--work-dir', work_dir, *show,
                 '--cfg-options', *options], timings)
    metrics = test_metrics(osp.join(ROOT, work_dir), tested)
    pictures = osp.join(ROOT, work_dir, 'focal_maps')
    images = []  # Focal Transformer pictures are of parameters, FocalNet's of images
    if Config.fromfile(config, import_custom_modules=False).model.backbone.type == 'FocalNet':
        count = task['num_pictures'] if args.num_pictures is None else args.num_pictures
        if args.task == 'cls':
            images = picture_images(osp.join(ROOT, args.data_root, task['images']), count)
        else:
            images = sorted(glob.glob(osp.join(ROOT, args.data_root, task['images'])))[:count]
    run('pictures', [py, 'tools/analysis/visualize_focal.py', config, checkpoint, *images,
                     '--out-dir', pictures, *task['picture_args']], timings)
    timings['total'] = round(time.time() - start, 1)

    figures = {name: round(metrics[key], 4) for name, key in task['metrics'].items()}
    summary = dict(task=args.task, config=config, checkpoint=checkpoint, figures=figures,
                   seconds=timings, predictions=predictions, focal_maps=pictures, **machine())
    with open(osp.join(ROOT, work_dir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    if args.record:
        record(summary)
    print(f'\n==> demo {args.task} done in {timings["total"]:.0f} s '
          f'({", ".join(f"{k} {v:.0f} s" for k, v in timings.items() if k != "total")})')
    for name, value in figures.items():
        print(f'    {name}: {value}')
    if predictions:
        print(f'    predictions drawn in {shown(predictions)}')
    print(f'    backbone pictures in {shown(pictures)}')
    return summary


if __name__ == '__main__':
    main()
