"""One source for every complexity figure: tools/analysis/check_complexity.py measures each
config and writes metafile.yml's ``Parameters (M)`` and ``FLOPs (G)`` (``--update``), and the
params / GFLOPs cells of the docs' tables and the model zoo's list of rows that differ from
the paper are written from metafile.yml. The pages are held to what the tool writes; the
metafile's figures are held to the tool's measurement here (a detection and a segmentation
row), in tests/test_configs.py (every config's params, and configs of one model share their
figures) and tests/test_classification_zoo.py (every classifier's params and FLOPs).

The model zoo's "backbone weights" column says for every config where the weights it starts
from come from, as its ``init_cfg`` names them.
"""
import fnmatch
import glob
import os.path as osp
import re
import sys

import pytest
import yaml
from mmengine.config import Config

from _helpers import ROOT
sys.path.insert(0, osp.join(ROOT, 'tools', 'analysis'))
import check_complexity  # noqa: E402

with open(osp.join(ROOT, 'metafile.yml')) as f:
    METAFILE = f.read()
MODELS = yaml.safe_load(METAFILE)['Models']
ROW = re.compile(r'^\| \[([^\]]+)\]\(\.\./\.\./(configs/[^)]+)\)')


def read(page: str) -> str:
    with open(osp.join(ROOT, page), encoding='utf-8') as f:
        return f.read()


def table_rows():
    """[(page, config, cells)] of every table row that starts with a config's link."""
    out = []
    for page in check_complexity.ZOO_PAGES:
        for line in read(page).split('\n'):
            m = ROW.match(line)
            if m:
                out.append((page, m.group(2),
                            [c.strip() for c in line.strip().strip('|').split('|')]))
    return out


@pytest.mark.parametrize('page', check_complexity.ZOO_PAGES)
def test_pages_are_written_from_the_metafile(page):
    text = read(page)
    written = check_complexity.write_zoo(text, MODELS)
    diff = [f'{page}:{i}:\n  is:     {a}\n  writes: {b}' for i, (a, b) in
            enumerate(zip(text.split('\n'), written.split('\n')), 1) if a != b]
    assert written == text, ('run tools/analysis/check_complexity.py --update; differs:\n'
                             + '\n'.join(diff[:5]))


def test_every_config_has_one_row():
    rows = [config for _, config, _ in table_rows()]
    configs = [m['Config'] for m in MODELS]
    assert sorted(rows) == sorted(configs)


def test_the_metafile_entries_have_measured_figures():
    for model in MODELS:
        meta = model['Metadata']
        digits = check_complexity.flops_digits(model['Config'])
        assert round(meta['Parameters (M)'], 2) == meta['Parameters (M)'], model['Name']
        assert round(meta['FLOPs (G)'], digits) == meta['FLOPs (G)'], model['Name']
        if 'Paper Table' in meta:
            assert set(check_complexity.PAPER_KEYS) <= set(meta), model['Name']


@pytest.mark.slow
@pytest.mark.parametrize('name', ['atss_focalnet_t_3x',
                                  'upernet_focalnet_t_512x512_160k_ade20k'])
def test_metafile_figures_are_the_measurement(name):
    """check_complexity.py's measurement of a row, rounded, is what the metafile records."""
    model = next(m for m in MODELS if m['Name'] == name)
    row = check_complexity.measure(model, None)
    assert row['status'] == 'ok', row
    assert check_complexity.figures(row) == (model['Metadata']['Parameters (M)'],
                                             model['Metadata']['FLOPs (G)'])


def test_write_metafile_keeps_the_layout():
    text = ('# a comment\nModels:\n'
            '- Name: a\n  Config: configs/detection/a.py\n  Metadata:\n'
            '    Parameters (M): 1.0\n    FLOPs (G): 2.0\n    Paper Parameters (M): 1.1\n'
            '    Paper FLOPs (G): 2\n'
            '- Name: b\n  Config: configs/classification/b.py\n  Metadata:\n'
            '    Parameters (M): 3.0\n    FLOPs (G): 4.0\n')
    rows = [dict(name='b', config='configs/classification/b.py', params=3.14159,
                 flops=4.56789, status='measured'),
            dict(name='a', config='configs/detection/a.py', params=1.23456, flops=2.34567,
                 status='ok'),
            dict(name='c', config='c.py', status='ERROR')]
    written = check_complexity.write_metafile(text, rows)
    assert written == text.replace('(M): 1.0', '(M): 1.23').replace('(G): 2.0', '(G): 2.3') \
        .replace('(M): 3.0', '(M): 3.14').replace('(G): 4.0', '(G): 4.57')
    with pytest.raises(ValueError, match='no entry d'):
        check_complexity.write_metafile(text, [dict(rows[0], name='d')])
    with pytest.raises(ValueError, match='has no FLOPs'):
        check_complexity.write_metafile(text.replace('    FLOPs (G): 4.0\n', ''), rows[:1])


def test_write_zoo_rewrites_cells_marks_and_the_list():
    models = [
        dict(Name='a', Config='configs/detection/a.py',
             Metadata={'Parameters (M)': 1.5, 'FLOPs (G)': 20.0, 'Paper Parameters (M)': 1.4,
                       'Paper FLOPs (G)': 21, 'Complexity Note': 'why a\n  differs'}),
        dict(Name='b', Config='configs/classification/b.py',
             Metadata={'Parameters (M)': 2.25, 'FLOPs (G)': 0.5}),
    ]
    page = '\n'.join([
        '# Zoo', '',
        '| config | params | GFLOPs | AP |', '|---|---|---|---|',
        '| [a](../../configs/detection/a.py) | 9 (9) | 9 (9) | 40.1 |',
        '| [b](../../configs/classification/b.py) [(*)](#rows-that-differ-from-the-paper) | 9 '
        '| 9 | 70 |',
        '| [c](../../configs/detection/c.py) | 9 | 9 | 1 |', '',
        '## Rows that differ from the paper', '', '- `old`: stale', '', '## Next', 'kept', ''])
    written = check_complexity.write_zoo(page, models).split('\n')
    assert written[4] == ('| [a](../../configs/detection/a.py) '
                          '[(*)](#rows-that-differ-from-the-paper) | 1.50 (1.4) | 20.0 (21) '
                          '| 40.1 |')
    assert written[5] == '| [b](../../configs/classification/b.py) | 2.25 | 0.50 | 70 |'
    assert written[6] == page.split('\n')[6]  # not in the metafile: left as it is
    assert written[8:] == ['## Rows that differ from the paper', '', '- `a`: why a differs', '',
                           '## Next', 'kept', '']


def weights_source(config: str) -> str:
    """What the model zoo says of the weights ``config``'s backbone starts from."""
    init = Config.fromfile(osp.join(ROOT, config)).model.backbone.get('init_cfg') or {}
    checkpoint = init.get('checkpoint', '')
    if checkpoint.startswith('https://github.com/microsoft/FocalNet/releases/'):
        return "authors' release"
    if checkpoint.startswith('checkpoints/') and checkpoint.endswith('.pdparams'):
        return 'by hand'
    if checkpoint.startswith('checkpoints/'):
        return f'`{osp.basename(checkpoint)}`, never published'
    raise AssertionError(f'{config} starts from {checkpoint!r}: say where it comes from')


@pytest.mark.slow
def test_the_backbone_weights_column_says_where_they_come_from():
    checked, dense = 0, ('configs/detection/', 'configs/segmentation/')
    for page, config, cells in table_rows():
        if page.endswith('model_zoo.md') and config.startswith(dense):
            assert weights_source(config) in cells[-2], (config, cells)
            checked += 1
    assert checked == sum(m['Config'].startswith(dense) and 'Paper Table' in m['Metadata']
                          for m in MODELS)


def test_the_readme_names_the_weights_no_host_serves():
    """Every ``checkpoints/`` file a config starts from is named in the README (the file or
    a pattern of it), the PaddleViT ports as ports downloaded by hand."""
    readme = read('README.md')
    named = re.findall(r'`([\w*.-]+\.pth)`', readme)
    files = set()
    for config in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True):
        files |= set(re.findall(r'checkpoints/([\w.-]+)', read(config)))
    assert files
    for name in files:
        if name.endswith('.pdparams'):
            assert "PaddleViT's ports" in readme and 'by hand' in readme
        else:
            assert any(fnmatch.fnmatch(name, pattern) for pattern in named), name
    assert 'never published' in readme
