"""Compare every config's parameters and FLOPs with its paper's row (from metafile.yml).

For each model of the metafile: params (M) and FLOPs (G, multiply-adds, counted by
get_flops.py) beside the paper's, with the relative difference. A detection or
segmentation row is within tolerance when params differ by at most 1% and FLOPs by at
most 3%, an image classification row (configs/classification, mmpretrain) by at most 2%
and 5%; a row outside is accepted only when its metafile entry carries
``Metadata: Complexity Note`` saying why. Exits 1 when a row is outside tolerance without
a note or cannot be measured.

Input sizes: one 1280x800 image for detection; H x 4H for segmentation with H the
config's crop size (512x2048, 640x2560); for classification one image of the config's
test crop (224x224, 384x384), as the papers counted.

``--by-blocks`` counts a classifier on a copy with one block per stage and adds each
stage's first block (params and FLOPs) once per further block: mmfocal's blocks of a stage
are alike, so this is the full count at a fraction of the time (tests/test_classification_zoo.py
checks the two agree).

The measured figures are the project's only record of its models' complexity: ``--update``
writes them into metafile.yml (``Parameters (M)``, ``FLOPs (G)``; the paper's row is in
``Paper Parameters (M)``, ``Paper FLOPs (G)``) and rewrites, from metafile.yml, the params
and GFLOPs cells of every config's row in the model zoo and systems pages and the model
zoo's list of rows that differ from the paper (tests/test_model_zoo.py holds the pages
to metafile.yml).

    python tools/analysis/check_complexity.py                   # every config
    python tools/analysis/check_complexity.py 'mask_rcnn_focalnet_t*' --json out.json
    python tools/analysis/check_complexity.py 'focal*in1k*' --by-blocks
    python tools/analysis/check_complexity.py 'atss_*' --update  # measure, write the docs
"""
import argparse
import copy
import fnmatch
import gc
import json
import os.path as osp
import re
import sys
import traceback
from typing import Dict, List, Optional, Tuple

import torch
import yaml
from mmengine.analysis import FlopAnalyzer
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

from mmfocal.registry import toolbox_of

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from get_flops import TensorForward, complexity, crop_shape, sdpa_flop  # noqa: E402,F401

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
NOTE_KEY = 'Complexity Note'
#: metafile Metadata keys: the model as configured (measured) and the paper's row
MEASURED_KEYS = ('Parameters (M)', 'FLOPs (G)')
PAPER_KEYS = ('Paper Parameters (M)', 'Paper FLOPs (G)')
#: the pages whose tables show params and GFLOPs of configs, and the model zoo's list
ZOO_PAGES = ('docs/en/model_zoo.md', 'docs/en/systems.md')
DIFFER_HEADING = '## Rows that differ from the paper'
DIFFER_LINK = '[(*)](#rows-that-differ-from-the-paper)'
#: largest accepted relative differences (params, FLOPs) per toolbox
TOLERANCES = {'mmdet': (0.01, 0.03), 'mmseg': (0.01, 0.03), 'mmpretrain': (0.02, 0.05)}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('patterns', nargs='*', default=['*'],
                        help='model names (fnmatch patterns) to check (default: all)')
    parser.add_argument('--metafile', default=osp.join(ROOT, 'metafile.yml'))
    parser.add_argument('--params-tol', type=float,
                        help='largest accepted relative difference of params (default: 0.01, '
                        'classification 0.02)')
    parser.add_argument('--flops-tol', type=float,
                        help='largest accepted relative difference of FLOPs (default: 0.03, '
                        'classification 0.05)')
    parser.add_argument('--by-blocks', action='store_true',
                        help='count classifiers from one block per stage (fast, same result)')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='one input size for every config instead of the papers\'')
    parser.add_argument('--json', help='also write the rows to this file')
    parser.add_argument('--update', action='store_true',
                        help='write the measured figures into the metafile and rewrite the '
                        'model zoo and systems pages from it')
    return parser.parse_args(argv)


def input_shape(cfg: Config) -> Tuple[int, int]:
    toolbox = toolbox_of(cfg)
    if toolbox == 'mmdet':
        return (800, 1280)
    if toolbox == 'mmpretrain':
        return crop_shape(cfg)
    crop = cfg.get('crop_size')
    if crop is None:
        raise ValueError('a segmentation config needs crop_size to choose its FLOPs input')
    return (crop[0], 4 * crop[0])


def block_counts(model_cfg, shape: Tuple[int, int]):
    """(params, multiply-adds, [(params, multiply-adds) of each stage's first block]) of
    the classifier ``model_cfg`` built with one block per stage, on a (1, 3, H, W) input."""
    one = copy.deepcopy(model_cfg)
    one.backbone.depths = [1] * len(model_cfg.backbone.depths)
    one.backbone.pop('init_cfg', None)
    init_default_scope('mmpretrain')
    model = MODELS.build(one).eval()  # the counts do not depend on the initial values
    analyzer = FlopAnalyzer(TensorForward(model, None), (torch.zeros(1, 3, *shape), ))
    analyzer.set_op_handle('aten::scaled_dot_product_attention', sdpa_flop)
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    with torch.no_grad():
        flops, by_module = analyzer.total(), analyzer.by_module()
    blocks = [(sum(p.numel() for p in layer.blocks[0].parameters()),
               by_module[f'model.backbone.layers.{i}.blocks.0'])
              for i, layer in enumerate(model.backbone.layers)]
    return sum(p.numel() for p in model.parameters()), flops, blocks


def add_blocks(counts, depths) -> Tuple[int, int]:
    """(params, multiply-adds) of the model with ``depths`` from :func:`block_counts`."""
    params, flops, blocks = counts
    for (block_params, block_flops), depth in zip(blocks, depths):
        params += (depth - 1) * block_params
        flops += (depth - 1) * block_flops
    return params, flops


def complexity_by_blocks(cfg: Config, shape: Tuple[int, int]) -> Tuple[int, int]:
    """(params, multiply-adds) of a classification config's model on a (1, 3, H, W) input,
    counted on a copy with one block per stage: each stage's further blocks add what its
    first block has and counts (mmfocal's blocks of a stage are alike)."""
    if toolbox_of(cfg) != 'mmpretrain':
        raise ValueError('counting by blocks is for classification configs')
    return add_blocks(block_counts(cfg.model, shape), cfg.model.backbone.depths)


def tolerances(cfg: Config, params_tol: Optional[float], flops_tol: Optional[float]):
    """The accepted relative differences for ``cfg``'s row: the given ones, else its
    toolbox's (``TOLERANCES``)."""
    default = TOLERANCES[toolbox_of(cfg)]
    return (default[0] if params_tol is None else params_tol,
            default[1] if flops_tol is None else flops_tol)


def measure(model: dict, shape: Optional[Tuple[int, int]], tols=(None, None),
            by_blocks: bool = False) -> dict:
    """One result row for a metafile model entry; ``tols`` (params, FLOPs), None for the
    toolbox's tolerance. An entry without a paper row (``Paper Parameters (M)``) is only
    measured (status ``measured``)."""
    meta = model.get('Metadata', {})
    row = dict(name=model['Name'], config=model['Config'], paper_params=meta.get(PAPER_KEYS[0]),
               paper_flops=meta.get(PAPER_KEYS[1]), note=meta.get(NOTE_KEY))
    try:
        cfg = Config.fromfile(osp.join(ROOT, model['Config']))
        row['shape'] = tuple(shape or input_shape(cfg))
        tols = tolerances(cfg, *tols)
        count = complexity_by_blocks if by_blocks and toolbox_of(cfg) == 'mmpretrain' \
            else complexity
        params, flops = count(cfg, row['shape'])
    except Exception as exc:  # reported as a failed row, the others still run
        traceback.print_exc()
        row.update(status='ERROR', error=f'{type(exc).__name__}: {exc}')
        return row
    row.update(params=params / 1e6, flops=flops / 1e9)
    if row['paper_params'] is None:
        row['status'] = 'measured'
        return row
    row['params_diff'] = row['params'] / row['paper_params'] - 1
    row['flops_diff'] = row['flops'] / row['paper_flops'] - 1
    within = abs(row['params_diff']) <= tols[0] and abs(row['flops_diff']) <= tols[1]
    row['status'] = 'ok' if within else ('explained' if row['note'] else 'OUT')
    return row


def flops_digits(config: str) -> int:
    """Decimals of a config's GFLOPs in the metafile and the docs: 2 for the ImageNet
    classifiers (a few G), 1 for detection and segmentation (hundreds of G)."""
    return 2 if config.startswith('configs/classification/') else 1


def figures(row: dict) -> Tuple[float, float]:
    """(params M, GFLOPs) of a measured row as the metafile records them."""
    return round(row['params'], 2), round(row['flops'], flops_digits(row['config']))


def write_metafile(text: str, rows: List[dict]) -> str:
    """``text`` (metafile.yml) with the measured figures of ``rows`` in their entries'
    ``Parameters (M)`` and ``FLOPs (G)``; comments and layout kept."""
    for row in rows:
        if row['status'] == 'ERROR':
            continue
        start = re.search(rf'^- Name: {re.escape(row["name"])}\n', text, re.M)
        if start is None:
            raise ValueError(f'no entry {row["name"]} in the metafile')
        end = text.find('\n- Name: ', start.end())
        end = len(text) if end < 0 else end
        entry = text[start.start():end]
        for key, value in zip(MEASURED_KEYS, figures(row)):
            entry, found = re.subn(rf'^(    {re.escape(key)}: ).*$', rf'\g<1>{value}', entry,
                                   count=1, flags=re.M)
            if not found:
                raise ValueError(f'the metafile entry {row["name"]} has no {key}')
        text = text[:start.start()] + entry + text[end:]
    return text


def zoo_cells(model: dict) -> List[str]:
    """The first three cells of a config's row in the docs' tables: the config (linked,
    with ``(*)`` when its metafile entry explains a difference from the paper), params M
    and GFLOPs, the paper's in brackets."""
    meta, config = model['Metadata'], model['Config']
    name = f'[{model["Name"]}](../../{config})'
    if NOTE_KEY in meta:
        name += f' {DIFFER_LINK}'
    params = f'{meta[MEASURED_KEYS[0]]:.2f}'
    flops = f'{meta[MEASURED_KEYS[1]]:.{flops_digits(config)}f}'
    if PAPER_KEYS[0] in meta:
        params += f' ({meta[PAPER_KEYS[0]]})'
        flops += f' ({meta[PAPER_KEYS[1]]})'
    return [name, params, flops]


def differ_list(models: List[dict]) -> str:
    """The model zoo's list of rows that differ from the paper: one item per note, naming
    the configs that carry it, in metafile order."""
    notes: Dict[str, List[str]] = {}
    for model in models:
        note = model['Metadata'].get(NOTE_KEY)
        if note:
            notes.setdefault(' '.join(note.split()), []).append(model['Name'])
    return '\n'.join(', '.join(f'`{n}`' for n in names).join(['- ', f': {note}'])
                     for note, names in notes.items())


def write_zoo(text: str, models: List[dict]) -> str:
    """``text`` (a docs page) with every table row of a metafile config rewritten by
    :func:`zoo_cells`, and the list under ``DIFFER_HEADING`` by :func:`differ_list`."""
    by_config = {m['Config']: m for m in models}
    lines = text.split('\n')
    for i, line in enumerate(lines):
        m = re.match(r'^\| \[[^\]]+\]\(\.\./\.\./(configs/[^)]+)\)', line)
        if m and m.group(1) in by_config:
            cells = [cell.strip() for cell in line.strip().strip('|').split('|')]
            lines[i] = '| ' + ' | '.join(zoo_cells(by_config[m.group(1)]) + cells[3:]) + ' |'
    text = '\n'.join(lines)
    if DIFFER_HEADING in text:
        head, rest = text.split(DIFFER_HEADING + '\n\n', 1)
        after = rest.find('\n## ')
        tail = rest[after:] if after >= 0 else '\n'
        text = f'{head}{DIFFER_HEADING}\n\n{differ_list(models)}\n{tail}'
    return text


def update_docs(models: List[dict]) -> List[str]:
    """Rewrite ``ZOO_PAGES`` from the metafile's ``models``; the pages that changed."""
    changed = []
    for page in ZOO_PAGES:
        with open(osp.join(ROOT, page), encoding='utf-8') as f:
            text = f.read()
        new = write_zoo(text, models)
        if new != text:
            with open(osp.join(ROOT, page), 'w', encoding='utf-8') as f:
                f.write(new)
            changed.append(page)
    return changed


def format_row(row: dict) -> str:
    if row['status'] == 'ERROR':
        return f"{row['name']:<46} ERROR {row['error']}"
    if row['status'] == 'measured':
        return (f"{row['name']:<46} {row['params']:7.2f} {'-':>7} {'':>7}  "
                f"{row['flops']:7.2f} {'-':>6} {'':>7}  measured")
    return (f"{row['name']:<46} {row['params']:7.2f} {row['paper_params']:7.1f} "
            f"{100 * row['params_diff']:+6.2f}%  {row['flops']:7.2f} {row['paper_flops']:6.1f} "
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
        rows.append(measure(model, args.shape, (args.params_tol, args.flops_tol),
                            args.by_blocks))
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
    if args.update:
        with open(args.metafile) as f:
            text = write_metafile(f.read(), rows)
        with open(args.metafile, 'w') as f:
            f.write(text)
        changed = update_docs(yaml.safe_load(text)['Models'])
        print(f'wrote {args.metafile} and {", ".join(changed) or "no page (all current)"}')
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
