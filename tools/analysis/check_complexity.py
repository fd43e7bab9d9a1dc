"""Compare every config's parameters and FLOPs with its paper's row (from metafile.yml).

For each model of the metafile: params (M) and FLOPs (G, multiply-adds, counted by
get_flops.py) beside the paper's, with the relative difference. A row is within
tolerance when params differ by at most 1% and FLOPs by at most 3%; a row outside is
accepted only when its metafile entry carries ``Metadata: Complexity Note`` saying why.
Exits 1 when a row is outside tolerance without a note or cannot be measured.

Input sizes: one 1280x800 image for detection; H x 4H for segmentation with H the
config's crop size (512x2048, 640x2560), as the papers counted.

    python tools/analysis/check_complexity.py                   # every config
    python tools/analysis/check_complexity.py 'mask_rcnn_focalnet_t*' --json out.json
"""
import argparse
import fnmatch
import gc
import json
import os.path as osp
import sys
import traceback
from typing import List, Optional, Tuple

import yaml
from mmengine.config import Config

from mmfocal.registry import toolbox_of

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from get_flops import complexity  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
NOTE_KEY = 'Complexity Note'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('patterns', nargs='*', default=['*'],
                        help='model names (fnmatch patterns) to check (default: all)')
    parser.add_argument('--metafile', default=osp.join(ROOT, 'metafile.yml'))
    parser.add_argument('--params-tol', type=float, default=0.01,
                        help='largest accepted relative difference of params')
    parser.add_argument('--flops-tol', type=float, default=0.03,
                        help='largest accepted relative difference of FLOPs')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='one input size for every config instead of the papers\'')
    parser.add_argument('--json', help='also write the rows to this file')
    return parser.parse_args(argv)


def input_shape(cfg: Config) -> Tuple[int, int]:
    if toolbox_of(cfg) == 'mmdet':
        return (800, 1280)
    crop = cfg.get('crop_size')
    if crop is None:
        raise ValueError('a segmentation config needs crop_size to choose its FLOPs input')
    return (crop[0], 4 * crop[0])


def measure(model: dict, shape: Optional[Tuple[int, int]], tols) -> dict:
    """One result row for a metafile model entry."""
    meta = model.get('Metadata', {})
    row = dict(name=model['Name'], config=model['Config'],
               paper_params=meta['Parameters (M)'], paper_flops=meta['FLOPs (G)'],
               note=meta.get(NOTE_KEY))
    try:
        cfg = Config.fromfile(osp.join(ROOT, model['Config']))
        row['shape'] = tuple(shape or input_shape(cfg))
        params, flops = complexity(cfg, row['shape'])
    except Exception as exc:  # reported as a failed row, the others still run
        traceback.print_exc()
        row.update(status='ERROR', error=f'{type(exc).__name__}: {exc}')
        return row
    row.update(params=params / 1e6, flops=flops / 1e9)
    row['params_diff'] = row['params'] / row['paper_params'] - 1
    row['flops_diff'] = row['flops'] / row['paper_flops'] - 1
    within = abs(row['params_diff']) <= tols[0] and abs(row['flops_diff']) <= tols[1]
    row['status'] = 'ok' if within else ('explained' if row['note'] else 'OUT')
    return row


def format_row(row: dict) -> str:
    if row['status'] == 'ERROR':
        return f"{row['name']:<46} ERROR {row['error']}"
    return (f"{row['name']:<46} {row['params']:7.2f} {row['paper_params']:7.1f} "
            f"{100 * row['params_diff']:+6.2f}%  {row['flops']:7.1f} {row['paper_flops']:6.0f} "
            f"{100 * row['flops_diff']:+6.2f}%  {row['status']}")


def select(models: List[dict], patterns: List[str]) -> List[dict]:
    chosen = [m for m in models if any(fnmatch.fnmatch(m['Name'], p) for p in patterns)]
    if not chosen:
        raise SystemExit(f'no model of the metafile matches {patterns}')
    return chosen


def main(argv=None) -> int:
    args = parse_args(argv)
    with open(args.metafile) as f:
        models = select(yaml.safe_load(f)['Models'], args.patterns)
    print(f"{'config':<46} {'params M':>7} {'paper':>7} {'diff':>7}  "
          f"{'GFLOPs':>7} {'paper':>6} {'diff':>7}  status", flush=True)
    rows = []
    for model in models:
        rows.append(measure(model, args.shape, (args.params_tol, args.flops_tol)))
        print(format_row(rows[-1]), flush=True)
        gc.collect()
    bad = [r for r in rows if r['status'] in ('OUT', 'ERROR')]
    for r in rows:
        if r['status'] == 'explained':
            print(f"explained {r['name']}: {r['note']}")
    print(f'{len(rows)} configs: {len(rows) - len(bad)} within tolerance or explained, '
          f'{len(bad)} not')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=1)
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
