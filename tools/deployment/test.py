"""Evaluate an exported graph (ONNX Runtime) on a config's test set with the config's
evaluator (COCO AP for mmdet configs, mIoU for mmseg configs), with mmdeploy's
tools/test.py command line::

    python tools/deployment/test.py configs/deploy/instance-seg_onnxruntime_dynamic.py \
        configs/detection/mask_rcnn_focalnet_t_1x.py work_dirs/deploy/end2end.onnx

The metrics are those tools/test.py gives for the PyTorch checkpoint. See
docs/en/deployment.md.
"""
import argparse
import sys

from mmengine.config import DictAction

import mmfocal  # noqa: F401  (registers the backbones)
from mmfocal.deploy import evaluate


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Evaluate an ONNX Runtime model')
    parser.add_argument('deploy_cfg', help='deploy config (configs/deploy/)')
    parser.add_argument('model_cfg', help='model config')
    parser.add_argument('backend_model', help='the exported graph (end2end.onnx)')
    parser.add_argument('--work-dir', default='work_dirs/deploy_test',
                        help='where the evaluation log and metrics go')
    parser.add_argument('--device', default='cpu', help='device of ONNX Runtime')
    parser.add_argument('--batch-size', type=int, default=1,
                        help='images per batch (default 1, as mmdeploy\'s tools/test.py); a '
                        'static graph takes its export batch only')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override model config entries, e.g. '
                        'test_dataloader.dataset.data_root=data/coco/')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        metrics = evaluate(args.deploy_cfg, args.model_cfg, args.backend_model,
                           args.work_dir, device=args.device, cfg_options=args.cfg_options,
                           batch_size=args.batch_size)
    except (FileNotFoundError, ValueError) as exc:
        sys.exit(f'test: {exc}')
    for name, value in metrics.items():
        print(f'{name}: {value}')
    return metrics


if __name__ == '__main__':
    main()
