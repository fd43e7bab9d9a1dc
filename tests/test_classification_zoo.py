"""The ImageNet classifiers (configs/classification, one config per ImageNet row of both
papers, listed in metafile.yml): each row has its config, each config builds the
classifier the authors build, counts its row's parameters (within 2%) and FLOPs (5%) or its
metafile entry says why, trains every parameter (DistributedDataParallel refuses unused
ones), keeps weight decay off the parameters the authors keep it off, and
``mmpretrain.get_model(name)`` finds it once mmfocal is imported. The recipes against the
authors' configs: tests/test_recipes.py.

The configs inherit mmpretrain's bases: tests that read them need mmpretrain (and the
torchvision it imports), and are skipped without it.
"""
import contextlib
import copy
import functools
import glob
import importlib
import json
import os.path as osp
import re
import sys
from unittest import mock

import pytest
import torch
import yaml

from _helpers import ROOT
from test_configs import ALL_MODELS, is_classification

sys.path.insert(0, osp.join(ROOT, 'tools', 'analysis'))
import check_complexity  # noqa: E402


def _has_mmpretrain() -> bool:
    try:
        importlib.import_module('mmpretrain.models')  # imports torchvision
    except ImportError:
        return False
    return True


needs_mmpretrain = pytest.mark.skipif(
    not _has_mmpretrain(), reason='mmpretrain (with torchvision) is not installed')

ROWS = [m for m in ALL_MODELS if is_classification(m)]
CONFIGS = [m['Config'] for m in ROWS]
ENTRY = {m['Config']: m for m in ROWS}
TABLES = osp.join(ROOT, '..', 'shared', 'spec', 'classification_tables.json')
# the ImageNet configs (the tutorial's CIFAR-10 and the demo's configs sit beside them)
IMAGENET = sorted(osp.relpath(p, ROOT) for p in glob.glob(
    osp.join(ROOT, 'configs', 'classification', '*_in1k*.py')))


@contextlib.contextmanager
def _cached_metafiles():
    """mmengine resolves every ``mmpretrain::`` base by reading all of mmpretrain's
    metafiles (0.2 s each time): read each once."""
    import mmengine.config.utils as utils
    with mock.patch.object(utils, 'load', _cached_load(utils.load)):
        yield


@functools.lru_cache(maxsize=None)
def _cached_load(load):
    return functools.lru_cache(maxsize=None)(load)


@functools.lru_cache(maxsize=None)
def load(config: str):
    """The config (parsed once; callers copy before changing it)."""
    from mmengine.config import Config
    with _cached_metafiles():
        return Config.fromfile(osp.join(ROOT, config))


@contextlib.contextmanager
def no_random_init():
    """Build without drawing initial values (parameter counts and FLOPs do not depend on
    them; drawing them is the slow part of building on a CPU)."""
    from mmengine.model import weight_init
    names = ('kaiming_uniform_', 'kaiming_normal_', 'uniform_', 'normal_', 'trunc_normal_',
             'xavier_uniform_', 'xavier_normal_')
    with contextlib.ExitStack() as stack:
        for name in names:
            stack.enter_context(mock.patch.object(torch.nn.init, name, lambda t, *a, **k: t))
        # what mmengine's trunc_normal_ (the backbones' Linear init) draws with
        stack.enter_context(mock.patch.object(
            weight_init, '_no_grad_trunc_normal_', lambda t, *a, **k: t))
        yield


def build(model_cfg) -> torch.nn.Module:
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope('mmpretrain')
    model_cfg = copy.deepcopy(model_cfg)
    model_cfg.backbone.pop('init_cfg', None)
    return MODELS.build(model_cfg)


def stage_widths(backbone) -> list:
    return [backbone.embed_dims * 2**i for i in range(len(backbone.depths))]


# ------------------------------------------------------------------ rows and metafile


def test_every_imagenet_config_is_a_metafile_row():
    assert IMAGENET and IMAGENET == sorted(CONFIGS)
    for model in ROWS:
        assert model['Name'] == osp.basename(model['Config'])[:-3]
        assert model['Results'][0]['Dataset'] == 'ImageNet-1k'
        meta = model['Metadata']
        assert meta['Batch Size'] == 1024
        assert meta['Resolution'] == (384 if model['Name'].endswith('-384px') else 224)
        # a row without weights says why
        assert ('Weights' in model) != ('Weights Note' in meta), model['Name']


def test_metafile_rows_are_the_papers_rows():
    """Each ImageNet row of both papers (and the Focal Transformer README's useconv rows)
    is one metafile entry with its table, params, FLOPs, top-1 and resolution, named for its
    model and size."""
    if not osp.exists(TABLES):
        pytest.skip('the papers\' tables are not beside the checkout')
    with open(TABLES) as f:
        rows = json.load(f)['rows']

    def paper_key(r):
        return (str(r['table']), r['params_m'], r['flops_g'], r['top1'],
                384 if r.get('resolution') == '224/384' else 224)

    def entry_key(m):
        meta = m['Metadata']
        return (meta['Paper Table'], meta['Paper Parameters (M)'], meta['Paper FLOPs (G)'],
                m['Results'][0]['Metrics']['Top 1 Accuracy'], meta['Resolution'])

    assert sorted(map(entry_key, ROWS)) == sorted(map(paper_key, rows))
    for r in rows:
        (model, ) = [m for m in ROWS if entry_key(m) == paper_key(r)]
        prefix = 'focal-transformer-' if r['paper'] == 'Focal Transformer' else 'focalnet-'
        size = re.search(r'(?:FocalNet|Focal)-([TSBL])', r['model']).group(1).lower()
        assert model['Name'].startswith(prefix + size), (r['model'], model['Name'])


# ------------------------------------------------------------------ the classifier


@needs_mmpretrain
@pytest.mark.parametrize('config', CONFIGS)
def test_config_builds_the_authors_classifier(config):
    cfg = load(config)
    name = osp.basename(config)[:-3]
    model, backbone = cfg.model, cfg.model.backbone
    assert cfg.default_scope == 'mmpretrain'
    assert cfg.custom_imports == dict(imports=['mmfocal'], allow_failed_imports=False)
    assert model.type == 'ImageClassifier' and 'init_cfg' not in model
    assert backbone.final_norm is True and backbone.get('out_indices') is None
    assert model.neck == dict(type='GlobalAveragePooling')
    head = model.head
    assert head.type == 'LinearClsHead' and head.num_classes == 1000
    assert head.in_channels == stage_widths(backbone)[-1]
    assert head.loss == dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')
    assert head.init_cfg == dict(type='TruncNormal', layer='Linear', std=.02, bias=0.)
    assert cfg.data_preprocessor.num_classes == 1000
    if name.startswith('focal-transformer'):
        assert backbone.type == 'FocalTransformer'
        assert (backbone.window_size, backbone.focal_levels, backbone.pool_method) == (7, 2, 'fc')
        assert tuple(backbone.focal_windows) == (7, 5, 3, 1)
        assert tuple(backbone.expand_size) == (3, 3, 3, 0)  # stage 3 (7x7) is one window
        assert backbone.wrap_neighbors is True
        assert tuple(backbone.num_heads) == tuple(w // 32 for w in stage_widths(backbone))
    else:
        assert backbone.type == 'FocalNet'
        assert backbone.focal_windows == (5 if '-l-fl3' in name else 3)
        assert backbone.focal_levels == (3 if re.search(r'-(lrf|iso|l-fl3)', name) else 2)
        assert backbone.get('patch_size', 4) == (16 if '-iso-p16' in name else 4)
        assert len(backbone.depths) == (1 if '-iso' in name else 4)
        large = '-l-fl3' in name or name.startswith('focalnet-b-iso')
        assert backbone.get('use_layerscale', False) == large
        assert backbone.get('use_postln', False) == large
    conv = re.search(r'-(overlap|useconv|deeper|l-fl3)', name) is not None
    assert backbone.get('use_conv_embed', False) == conv
    # 22K -> 1K fine-tuning: no Mixup / CutMix; FocalNet-L from the authors' 22K weights
    finetune = 'in21k-pre' in name
    assert (model.train_cfg is None) == finetune
    if '-l-fl3' in name:
        assert backbone.init_cfg == dict(
            type='Pretrained', checkpoint='https://github.com/microsoft/FocalNet/releases/'
            'download/v1.0.0/focalnet_large_lrf_384.pth')
    else:
        assert 'init_cfg' not in backbone
    size = ENTRY[config]['Metadata']['Resolution']
    assert check_complexity.crop_shape(cfg) == (size, size)
    assert cfg.train_dataloader.dataset.pipeline[1] == dict(
        type='RandomResizedCrop', scale=size, backend='pillow', interpolation='bicubic')


# ------------------------------------------------------------------ params and FLOPs


def _one_block_key(model_cfg, shape) -> str:
    """Configs whose models with one block per stage are alike share the count."""
    model = copy.deepcopy(model_cfg).to_dict()
    model['backbone'].update(depths=[1] * len(model['backbone']['depths']))
    for key in ('drop_path_rate', 'init_cfg'):
        model['backbone'].pop(key, None)
    model.pop('train_cfg', None)
    return json.dumps([model, shape], sort_keys=True, default=str)


_COUNTS = {}


def block_counts(model_cfg, shape):
    key = _one_block_key(model_cfg, shape)
    if key not in _COUNTS:
        with no_random_init():
            _COUNTS[key] = check_complexity.block_counts(model_cfg, shape)
    return _COUNTS[key]


@needs_mmpretrain
@pytest.mark.parametrize('config', CONFIGS)
def test_complexity_is_the_rows(config):
    """The metafile's Parameters (M) and FLOPs (G) are this count (check_complexity.py
    --update writes them), within 2% / 5% of the paper's row at its resolution, else the
    metafile's Complexity Note (and then only outside those bounds)."""
    cfg = load(config)
    shape = check_complexity.crop_shape(cfg)
    params, flops = check_complexity.add_blocks(
        block_counts(cfg.model, shape), cfg.model.backbone.depths)
    meta = ENTRY[config]['Metadata']
    row = dict(config=config, params=params / 1e6, flops=flops / 1e9)
    assert check_complexity.figures(row) == (meta['Parameters (M)'], meta['FLOPs (G)'])
    paper_params, paper_flops = meta['Paper Parameters (M)'], meta['Paper FLOPs (G)']
    params_diff = params / 1e6 / paper_params - 1
    flops_diff = flops / 1e9 / paper_flops - 1
    within = abs(params_diff) <= 0.02 and abs(flops_diff) <= 0.05
    message = (f'{params / 1e6:.2f}M vs {paper_params}M ({100 * params_diff:+.1f}%), '
               f'{flops / 1e9:.2f} G vs {paper_flops} G ({100 * flops_diff:+.1f}%)')
    assert within != ('Complexity Note' in meta), message


@needs_mmpretrain
@pytest.mark.parametrize('config, shape', [
    ('configs/classification/focalnet-t-srf-overlap_8xb128_in1k.py', (64, 64)),
    ('configs/classification/focalnet-b-iso-p16_8xb128_in1k.py', (96, 96)),
    ('configs/classification/focal-transformer-t_8xb128_in1k.py', (112, 112)),
])
def test_counting_by_blocks_is_the_full_count(config, shape):
    """check_complexity.py --by-blocks (one block per stage, the others added) counts what
    get_flops.py counts on the whole model, here narrower models with 2-3 blocks a stage."""
    from get_flops import complexity
    cfg = copy.deepcopy(load(config))
    backbone = cfg.model.backbone
    stages = len(backbone.depths)
    backbone.update(embed_dims=32, depths=[2, 3, 2, 2][:stages] if stages > 1 else [3])
    if backbone.type == 'FocalTransformer':
        backbone.num_heads = (1, 2, 4, 8)
    cfg.model.head.in_channels = stage_widths(backbone)[-1]
    with no_random_init():
        assert check_complexity.complexity_by_blocks(cfg, shape) == complexity(cfg, shape)


# ------------------------------------------------------------------ training


def _narrow(model_cfg):
    """One block per stage, 16-wide stage 0 (heads of 8 channels): every kind of module."""
    model = copy.deepcopy(model_cfg)
    backbone = model.backbone
    backbone.update(embed_dims=16, depths=[1] * len(backbone.depths), drop_path_rate=0.)
    if backbone.type == 'FocalTransformer':
        backbone.num_heads = [w // 8 for w in stage_widths(backbone)]
    model.head.in_channels = stage_widths(backbone)[-1]
    return model


def _training_input(config):
    """Focal Transformer's modules depend on the input size (its last stage is one window at
    224): the row's resolution; FocalNet's do not: 64x64."""
    cfg = load(config)
    if cfg.model.backbone.type == 'FocalTransformer':
        return check_complexity.crop_shape(cfg)
    return (64, 64)


@needs_mmpretrain
@pytest.mark.parametrize('config', CONFIGS)
def test_every_parameter_trains(config):
    """Every parameter gets a gradient from the loss at the row's input size: multi-GPU
    training (DistributedDataParallel without find_unused_parameters) works."""
    cfg = load(config)
    key = _one_block_key(_narrow(cfg.model), _training_input(config))
    first = next(c for c in CONFIGS
                 if _one_block_key(_narrow(load(c).model), _training_input(c)) == key)
    if first != config:
        pytest.skip(f'same narrow model as {first}')
    torch.manual_seed(0)
    model = build(_narrow(cfg.model))
    model.init_weights()
    feats = model.extract_feat(torch.randn(2, 3, *_training_input(config)))
    model.head.loss_module(model.head(feats), torch.tensor([3, 7])).backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not unused


def _authors_no_decay(name: str, param: torch.Tensor, backbone_type: str) -> bool:
    """Both codebases' optimizer.py: no weight decay on 1-D parameters and biases (line
    43); Focal Transformer's no_weight_decay_keywords add its position-bias tables
    (focal_transformer.py L1070-1071). FocalNet's keywords are {''}, which would take
    decay off everything: CLASSIFICATION_RECIPES documents it; the configs keep the paper's."""
    if param.ndim == 1 or name.endswith('.bias'):
        return True
    return backbone_type == 'FocalTransformer' and 'relative_position_bias_table' in name


@needs_mmpretrain
@pytest.mark.parametrize('config', [
    'configs/classification/focalnet-b-iso-p16_8xb128_in1k.py',  # layer scale, post-norm
    'configs/classification/focalnet-t-srf-overlap_8xb128_in1k.py',
    'configs/classification/focal-transformer-t_8xb128_in1k.py',
    'configs/classification/focalnet-l-fl3_in21k-pre_8xb128_in1k.py',
])
def test_weight_decay_where_the_authors_put_it(config):
    from mmengine.optim import build_optim_wrapper
    cfg = load(config)
    model = build(_narrow(cfg.model))
    wrapper = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
    decay = {id(p): group['weight_decay'] for group in wrapper.optimizer.param_groups
             for p in group['params']}
    base = cfg.optim_wrapper.optimizer.weight_decay
    assert base > 0
    wrong = [n for n, p in model.named_parameters()
             if decay[id(p)] != (0 if _authors_no_decay(n, p, cfg.model.backbone.type) else base)]
    assert not wrong
    assert cfg.optim_wrapper.clip_grad == dict(max_norm=5.0)


# ------------------------------------------------------------------ mmpretrain's model hub


@needs_mmpretrain
def test_mmpretrain_finds_the_configs_by_name():
    import mmpretrain

    import mmfocal
    assert mmfocal.registry.register_model_index() == []  # import mmfocal registered them
    names = sorted(m['Name'] for m in ROWS)
    assert sorted(mmpretrain.list_models('focalnet') + mmpretrain.list_models(
        'focal-transformer')) == names
    assert mmpretrain.list_models('focalnet', task='Image Classification') == [
        n for n in names if n.startswith('focalnet')]
    model = mmpretrain.get_model('focalnet-t-iso-p16_8xb128_in1k')
    assert type(model).__name__ == 'ImageClassifier'
    assert type(model.backbone).__name__ == 'FocalNet' and model.backbone.patch_embed
    assert model._config.filename == osp.join(
        ROOT, 'configs/classification/focalnet-t-iso-p16_8xb128_in1k.py')
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 64)).shape == (1, 1000)
    assert len(model._dataset_meta['classes']) == 1000  # ImageNet's, from the test dataset
    weights = {m['Name']: m.get('Weights') for m in ROWS}
    hub = mmpretrain.apis.ModelHub.get('focalnet-t-srf_8xb128_in1k')
    assert hub.weights == weights['focalnet-t-srf_8xb128_in1k']


@needs_mmpretrain
def test_get_model_with_pretrained_loads_the_rows_weights(tmp_path):
    """``get_model(name, pretrained=True)`` reads the row's Weights: here a file in the
    authors' layout (``{'model': ...}``, ``norm``, ``head``) where the URL points, for a
    narrow FocalNet-T (the hub merges keyword arguments into the model)."""
    import mmpretrain
    name = 'focalnet-t-srf_8xb128_in1k'
    url = next(m['Weights'] for m in ROWS if m['Name'] == name)
    narrow = dict(backbone=dict(embed_dims=16), head=dict(in_channels=128))
    torch.manual_seed(0)
    source = mmpretrain.get_model(name, **narrow)
    source.init_weights()
    authors = {re.sub(r'^backbone\.', '', re.sub(r'^head\.fc\.', 'head.', key)): value
               for key, value in source.state_dict().items()}
    assert {'norm.weight', 'head.weight', 'patch_embed.proj.weight'} <= set(authors)
    torch.save({'model': authors}, tmp_path / osp.basename(url))
    model = mmpretrain.get_model(name, pretrained=True, **narrow,
                                 url_mapping=(re.escape(osp.dirname(url)), str(tmp_path)))
    loaded = model.state_dict()
    assert set(loaded) == set(source.state_dict())
    assert all(torch.equal(value, loaded[key]) for key, value in source.state_dict().items())


@needs_mmpretrain
def test_register_model_index_adds_names_once_and_leaves_others(tmp_path):
    from mmpretrain.apis import ModelHub

    from mmfocal.registry import register_model_index
    entry = copy.deepcopy(ROWS[0])
    entry['Name'] = 'mmfocal-test-only_in1k'
    entry['Config'] = osp.relpath(osp.join(ROOT, ROWS[0]['Config']), tmp_path)
    taken = copy.deepcopy(ROWS[1])  # the name is registered for mmfocal's config
    taken['Config'] = 'elsewhere/config.py'
    detection = {'Name': 'not-a-classifier', 'Config': 'x.py',
                 'Results': [{'Task': 'Object Detection'}]}
    metafile = tmp_path / 'metafile.yml'
    metafile.write_text(yaml.safe_dump({'Models': [entry, taken, detection]}))
    try:
        with pytest.warns(UserWarning, match=ROWS[1]['Name']):
            assert register_model_index(str(metafile)) == ['mmfocal-test-only_in1k']
        assert ModelHub.get('mmfocal-test-only_in1k').config.filename == osp.join(
            ROOT, ROWS[0]['Config'])
        assert not ModelHub.has('not-a-classifier')
        with pytest.warns(UserWarning):
            assert register_model_index(str(metafile)) == []
        assert ModelHub._models_dict[ROWS[1]['Name']].config == osp.join(
            ROOT, ROWS[1]['Config'])
    finally:
        ModelHub._models_dict.pop('mmfocal-test-only_in1k', None)
    assert register_model_index(str(tmp_path / 'missing.yml')) == []
