"""The papers' configs: every one builds at full size with the paper's parameter count,
runs a forward pass (backbone depths shrunk to one block per stage), and holds the
recipe of its row; the optimizer's no-decay keys match the backbones' parameter names;
``custom_imports`` alone registers the backbones for a config built on an mmdet base."""
import contextlib
import copy
import functools
import glob
import json
import logging
import os.path as osp
import re
import subprocess
import sys
import textwrap
from unittest import mock

import pytest
import torch
import yaml
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.model.utils import revert_sync_batchnorm
from mmengine.registry import MODELS, init_default_scope

from _helpers import PYTHON, ROOT, focalnet_variants
sys.path.insert(0, osp.join(ROOT, 'tools', 'analysis'))
from get_flops import data_samples_for  # noqa: E402

with open(osp.join(ROOT, 'metafile.yml')) as f:
    ALL_MODELS = yaml.safe_load(f)['Models']


def is_classification(model: dict) -> bool:
    """A metafile entry of an ImageNet classifier (mmpretrain; tests/test_classification_zoo.py)."""
    return any(r['Task'] == 'Image Classification' for r in model.get('Results', []))


# The detection and segmentation entries (the classifiers need mmpretrain).
MODELS_INDEX = [m for m in ALL_MODELS if not is_classification(m)]
# The papers' rows; the large-model systems (no paper table) are tested in test_systems.py.
PAPER_ROWS = [m for m in MODELS_INDEX if 'Paper Table' in m['Metadata']]
CONFIGS = [m['Config'] for m in PAPER_ROWS]
PAPER_TABLES = osp.join(ROOT, '..', 'shared', 'spec', 'paper_tables.json')


@functools.lru_cache(maxsize=None)
def load(config: str) -> Config:
    return Config.fromfile(osp.join(ROOT, config))


def fresh(config: str) -> Config:
    """A copy of the config with the pretrained weights off (nothing is downloaded)."""
    cfg = copy.deepcopy(load(config))
    cfg.model.backbone.init_cfg = None
    return cfg


@contextlib.contextmanager
def no_random_init():
    """Build without drawing the random initial values (the slow part of building a
    100M-parameter model on CPU): modules and parameter shapes are real."""
    names = ('kaiming_uniform_', 'kaiming_normal_', 'uniform_', 'normal_', 'trunc_normal_',
             'xavier_uniform_', 'xavier_normal_')
    with contextlib.ExitStack() as stack:
        for name in names:
            stack.enter_context(mock.patch.object(torch.nn.init, name, lambda t, *a, **k: t))
        yield


def build(cfg: Config) -> torch.nn.Module:
    init_default_scope(cfg.default_scope)
    return revert_sync_batchnorm(MODELS.build(cfg.model))


def shrink(cfg: Config) -> Config:
    """One block per stage and fewer proposals: the forward pass stays cheap while every
    module of the detector / segmentor still runs."""
    cfg.model.backbone.depths = (1, 1, 1, 1)
    test_cfg = cfg.model.get('test_cfg') or {}
    if test_cfg.get('rpn'):
        test_cfg.rpn.update(nms_pre=100, max_per_img=20)
    if 'num_proposals' in cfg.model.get('rpn_head', {}):
        cfg.model.rpn_head.num_proposals = 20
        test_cfg.rcnn.max_per_img = 20
    return cfg


# ------------------------------------------------------------------ builds at full size


def _model_key(cfg: Config) -> str:
    """Configs that differ only in schedule, data or drop path share one model."""
    model = copy.deepcopy(cfg.model)
    model.backbone.pop('drop_path_rate', None)
    return json.dumps(model.to_dict(), sort_keys=True, default=str)


@functools.lru_cache(maxsize=None)
def _key_of(config: str, shrunk: bool) -> str:
    return _model_key(shrink(fresh(config)) if shrunk else fresh(config))


def _first_with_same_model(config: str, shrunk: bool) -> str:
    """The first config of CONFIGS whose (shrunk) model equals ``config``'s."""
    key = _key_of(config, shrunk)
    return next(c for c in CONFIGS if _key_of(c, shrunk) == key)


@pytest.mark.slow
@pytest.mark.parametrize('config', CONFIGS)
def test_builds_with_paper_params(config):
    """Full-size model: the parameter count is the paper's within 1%, unless the
    metafile explains the difference."""
    model_index = next(m for m in MODELS_INDEX if m['Config'] == config)
    first = _first_with_same_model(config, shrunk=False)
    if first != config:
        pytest.skip(f'same model as {first}, whose build is tested')
    with no_random_init():
        model = build(fresh(config))
    params = sum(p.numel() for p in model.parameters()) / 1e6
    meta = model_index['Metadata']
    assert round(params, 2) == meta['Parameters (M)']  # check_complexity.py --update's
    paper, note = meta['Paper Parameters (M)'], meta.get('Complexity Note')
    assert note or abs(params / paper - 1) <= 0.01, f'{params:.2f}M vs paper {paper}M'


@pytest.mark.parametrize('config', CONFIGS)
def test_the_same_model_has_the_same_figures(config):
    """Configs that build the same model (at full size) record the same measured params
    and FLOPs in the metafile (schedules differ, the model does not)."""
    first = _first_with_same_model(config, shrunk=False)
    meta = {m['Config']: m['Metadata'] for m in PAPER_ROWS}
    figures = [(meta[c]['Parameters (M)'], meta[c]['FLOPs (G)']) for c in (config, first)]
    assert figures[0] == figures[1], f'{config} and {first} build the same model'


# ------------------------------------------------------------------ one forward pass


@pytest.mark.parametrize('config', CONFIGS)
def test_forward(config):
    """predict() on a 64x96 image gives well-formed results (boxes / masks / label map)."""
    first = _first_with_same_model(config, shrunk=True)
    if first != config:
        pytest.skip(f'same model as {first}, whose forward pass is tested')
    cfg = shrink(fresh(config))
    model = build(cfg)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
    model.eval()
    inputs = torch.rand(1, 3, 64, 96) * 2 - 1
    with torch.no_grad():
        results = model(inputs, data_samples_for(cfg.default_scope, (64, 96)), mode='predict')
    assert len(results) == 1
    if cfg.default_scope == 'mmseg':
        assert results[0].pred_sem_seg.data.shape == (1, 64, 96)
        assert int(results[0].pred_sem_seg.data.max()) < 150
        return
    pred = results[0].pred_instances
    assert pred.bboxes.dim() == 2 and pred.bboxes.shape[1] == 4
    assert len(pred.scores) == len(pred.labels) == len(pred.bboxes)
    if 'masks' in pred:
        assert pred.masks.shape[1:] == (64, 96)


# ------------------------------------------------------------------ recipes of the rows


def _paper_row(config):
    return next(m for m in MODELS_INDEX if m['Config'] == config)


@pytest.mark.parametrize('config', CONFIGS)
def test_recipe(config):
    cfg = load(config)
    name = osp.basename(config)[:-3]
    backbone = cfg.model.backbone
    assert cfg.custom_imports == dict(imports=['mmfocal'], allow_failed_imports=False)
    assert cfg.train_dataloader.batch_size == 2
    assert cfg.auto_scale_lr.base_batch_size == 16
    assert backbone.init_cfg.type == 'Pretrained'
    assert backbone.type == ('FocalNet' if '_focalnet_' in name else 'FocalTransformer')
    if backbone.type == 'FocalNet':
        assert backbone.focal_levels == (3 if '_lrf' in name else 2)
        windows = 9 if name.startswith(('mask_rcnn', 'upernet')) else (11, 9, 9, 7)
        assert backbone.focal_windows == windows
    else:
        assert tuple(backbone.focal_windows) == (15, 13, 9, 7)
    if cfg.default_scope == 'mmseg':
        crop = _paper_row(config)['Metadata']['Crop Size']
        assert cfg.model.pretrained is None
        assert tuple(cfg.crop_size) == (crop, crop)
        assert cfg.model.auxiliary_head.in_channels == 4 * backbone.embed_dims
        assert cfg.model.decode_head.num_classes == 150
        assert cfg.train_cfg.max_iters == 160000
        assert cfg.optim_wrapper.optimizer.lr == 6e-5
        assert cfg.param_scheduler[0].end == 1500
        return
    epochs = _paper_row(config)['Metadata']['Epochs']
    repeats = cfg.train_dataloader.dataset.get('times', 1)  # RepeatDataset (DyHead 2x)
    assert cfg.train_cfg.max_epochs * repeats == epochs
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    if name.startswith('sparse_rcnn'):
        assert cfg.optim_wrapper.optimizer.lr == 2.5e-5
        assert cfg.optim_wrapper.clip_grad.max_norm == 1
        assert cfg.model.rpn_head.num_proposals == 300
    if 'out_indices' in backbone:
        assert len(backbone.out_indices) == len(_neck(cfg).in_channels)


def _neck(cfg):
    return cfg.model.neck[0] if isinstance(cfg.model.neck, list) else cfg.model.neck


@pytest.mark.parametrize(
    'config', [c for c in CONFIGS if osp.basename(c).startswith('mask_rcnn_focalnet')])
def test_focalnet_mask_rcnn_pipeline(config):
    """Multi-scale training with the crop branch (drop path, schedule and precision against
    the authors' configs: test_recipes.py)."""
    cfg = load(config)
    assert [t.type for t in cfg.train_dataloader.dataset.pipeline][3] == 'RandomChoice'


def test_metafile_matches_paper_tables():
    if not osp.exists(PAPER_TABLES):
        pytest.skip('the papers\' tables are not beside the checkout')
    with open(PAPER_TABLES) as f:
        rows = json.load(f)['rows']
    paper = {(r['params_m'], r['flops_g'], r.get('box_ap'), r.get('miou')) for r in rows}
    for m in PAPER_ROWS:
        meta, results = m['Metadata'], m['Results'][0]['Metrics']
        key = (meta['Paper Parameters (M)'], meta['Paper FLOPs (G)'], results.get('box AP'),
               results.get('mIoU'))
        assert key in paper, m['Name']
    expressible = [r for r in rows if r['detector'] != 'RepPointsV2']
    assert len(PAPER_ROWS) == len(expressible)
    assert all(osp.exists(osp.join(ROOT, c)) for c in CONFIGS)


# ------------------------------------------------------------------ no decay on norms


def _decay_by_param(cfg, model):
    from mmengine.optim import build_optim_wrapper

    from mmfocal.engine import amp_fallback
    amp_fallback(cfg)  # float32 where the device has no mixed precision, as tools/train.py
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    decay = {}
    for group in wrapper.optimizer.param_groups:
        for p in group['params']:
            decay[id(p)] = group['weight_decay']
    return decay


@pytest.mark.parametrize('config', [
    'configs/detection/mask_rcnn_focalnet_t_1x.py',
    'configs/detection/retinanet_focal_transformer_t_1x.py',
    'configs/segmentation/upernet_focalnet_t_lrf_512x512_160k_ade20k.py',
    'configs/segmentation/upernet_focal_transformer_t_512x512_160k_ade20k.py',
])
def test_no_weight_decay_on_norms_and_bias_tables(config):
    """Every LayerNorm parameter of the backbone (found by module type, not by name) and
    every position-bias table gets weight decay 0; every other parameter the config's."""
    cfg = shrink(fresh(config))
    model = build(cfg)
    decay = _decay_by_param(cfg, model)
    norm_params = {id(p) for m in model.backbone.modules()
                   if isinstance(m, torch.nn.LayerNorm) for p in m.parameters()}
    assert norm_params
    base = cfg.optim_wrapper.optimizer.weight_decay
    for name, p in model.backbone.named_parameters():
        no_decay = id(p) in norm_params or 'relative_position_bias_table' in name
        assert decay[id(p)] == (0 if no_decay else base), name


# ------------------------------------------------------------------ custom_imports


def test_custom_imports_registers_backbone_in_mmdet_base(tmp_path):
    """In a fresh interpreter that never imports mmfocal itself, a config on an mmdet base
    finds FocalNet through ``custom_imports`` and only through it."""
    body = textwrap.dedent("""
        _base_ = 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'
        model = dict(
            backbone=dict(_delete_=True, type='FocalNet', embed_dims=32, depths=(1, 1, 1, 1)),
            neck=dict(in_channels=[32, 64, 128, 256]))
    """)
    without, with_import = tmp_path / 'without.py', tmp_path / 'with_import.py'
    without.write_text(body)
    with_import.write_text(
        body + "custom_imports = dict(imports=['mmfocal'], allow_failed_imports=False)\n")
    code = textwrap.dedent(f"""
        import sys
        from mmengine.config import Config
        from mmengine.registry import init_default_scope
        from mmdet.registry import MODELS
        init_default_scope('mmdet')
        try:
            MODELS.build(Config.fromfile({str(without)!r}).model)
            print('built without custom_imports')
        except KeyError as exc:
            print('without:', exc)
        assert 'mmfocal' not in sys.modules
        model = MODELS.build(Config.fromfile({str(with_import)!r}).model)
        print('with:', type(model.backbone).__name__)
    """)
    result = subprocess.run([PYTHON, '-c', code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert 'without:' in lines[-2] and 'FocalNet is not in the mmdet::model registry' in lines[-2]
    assert lines[-1] == 'with: FocalNet'


# Focal Transformer variants (paper Table 1; L: Swin-L's widths) with the detection and
# segmentation windows of the paper; each config's recipe adds drop_path_rate, out_indices
# and the checkpoint.
FOCAL_TRANSFORMER_VARIANTS = {
    't': dict(embed_dims=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24)),
    's': dict(embed_dims=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24)),
    'b': dict(embed_dims=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32)),
    'l': dict(embed_dims=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48)),
}
RECIPE_KEYS = {'drop_path_rate', 'out_indices', 'init_cfg'}


@pytest.mark.parametrize('config', sorted(
    osp.relpath(p, ROOT)
    for p in glob.glob(osp.join(ROOT, 'configs', '*', '*focal_transformer_*.py'))
    if 'demo' not in p))
def test_focal_transformer_backbone_is_its_variant(config):
    """The merged backbone of every Focal Transformer config: the variant of its name, the
    paper's windows, nothing left over from the base's ResNet or Swin."""
    variant = re.search(r'focal_transformer_([tsbl])_', config).group(1)
    backbone = load(config).model.backbone.to_dict()
    expected = dict(type='FocalTransformer', window_size=7, expand_size=3, focal_levels=2,
                    focal_windows=(15, 13, 9, 7), **FOCAL_TRANSFORMER_VARIANTS[variant])
    assert {k: v for k, v in backbone.items() if k not in RECIPE_KEYS} == expected
    assert backbone['init_cfg']['type'] == 'Pretrained'
    assert backbone['init_cfg']['checkpoint'] == load(config).pretrained


# ------------------------------------------------------------------ FocalNet variants

FOCALNET_FLAGS = ('use_conv_embed', 'use_postln', 'use_layerscale', 'normalize_modulator',
                  'use_postln_in_modulation')


@pytest.mark.parametrize('config', [c for c in CONFIGS if '_focalnet_' in c])
def test_focalnet_configs_are_the_authors_variants(config):
    """Each paper FocalNet config's backbone has the widths, depths and flags of its variant
    in configs/_base_/models/focalnet.py (LRF: 3 focal levels over the SRF model), with the
    dense kernels of the papers (windows 9, or 11-9-9-7 for Cascade, ATSS, Sparse R-CNN)."""
    size, deeper, lrf = re.search(r'_focalnet_([tsb])(_deeper)?(_lrf)?_', config).groups()
    structure = focalnet_variants()[f'{size}_deeper' if deeper else f'{size}_srf']
    backbone = load(config).model.backbone
    for key in ('embed_dims', 'depths') + FOCALNET_FLAGS:
        value = backbone.get(key, False)
        assert (tuple(value) if isinstance(value, list) else value) == \
            structure.get(key, False), key
    assert backbone.focal_levels == (3 if lrf else 2)
    windows = backbone.focal_windows
    assert windows == 9 or tuple(windows) in ((9, 9, 9, 9), (11, 9, 9, 7)), windows
