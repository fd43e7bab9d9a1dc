"""Export a detector or segmentor to ONNX for ONNX Runtime through mmdeploy, with
mmdeploy's tools/deploy.py command line, and check the graph against PyTorch::

    python tools/deployment/deploy.py configs/deploy/instance-seg_onnxruntime_dynamic.py \
        configs/detection/mask_rcnn_focalnet_t_1x.py CHECKPOINT demo.jpg --work-dir DIR

DIR receives end2end.onnx and mmdeploy's deploy.json, pipeline.json and detail.json; the
largest differences between ONNX Runtime and PyTorch on IMG (and every --test-img) are
printed. A graph that differs from PyTorch is removed and the command fails. See
docs/en/deployment.md.
"""
import argparse
import sys

from mmengine.config import DictAction

import mmfocal  # noqa: F401  (registers the backbones)
from mmfocal.deploy import DeploymentError, deploy, describe


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Export to ONNX Runtime through mmdeploy')
    parser.add_argument('deploy_cfg', help='deploy config (configs/deploy/)')
    parser.add_argument('model_cfg', help='model config')
    parser.add_argument('checkpoint', help='checkpoint of the model')
    parser.add_argument('img', help='image to export with and check on')
    parser.add_argument('--test-img', nargs='+', default=[],
                        help='more images to check the graph on (other sizes, for '
                        'dynamic configs)')
    parser.add_argument('--work-dir', default='work_dirs/deploy',
                        help='where end2end.onnx and the json files go')
    parser.add_argument('--device', default='cpu', help='device of the export')
    parser.add_argument('--atol', type=float, default=1e-3,
                        help='largest accepted |ONNX Runtime - PyTorch| (plus --rtol)')
    parser.add_argument('--rtol', type=float, default=1e-3,
                        help='accepted difference relative to |PyTorch|')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override model config entries')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        result = deploy(args.deploy_cfg, args.model_cfg, args.checkpoint, args.img,
                        args.work_dir, test_images=args.test_img, device=args.device,
                        atol=args.atol, rtol=args.rtol, cfg_options=args.cfg_options)
    except (DeploymentError, FileNotFoundError, ValueError) as exc:
        sys.exit(f'deploy: {exc}')
    print(f'wrote {result.onnx_file} and deploy.json, pipeline.json, detail.json beside it')
    print('operators: ' + ('standard ONNX only' if not result.custom_ops else
                           'standard ONNX and ' + ', '.join(result.custom_ops) +
                           ' (mmdeploy\'s ONNX Runtime op library)'))
    for check in result.checks:
        print(describe(check))
    return result


if __name__ == '__main__':
    main()
