"""Every FocalNet paper config against the FocalNet authors' recipe.

``AUTHORS`` holds, for each config of a paper row, the values of the authors' mmdet 2 /
mmseg 0 config it reproduces, each with the file and line it is read from (the authors'
repository microsoft/FocalNet at commit e8514bd, and the mmdet 2.11 base schedule their
detection configs inherit unchanged). A later edit of a config or of a base file that moves
a value away from the authors' fails here, naming the value and its source.
"""
import functools
import os.path as osp
import re

import pytest
import yaml
from mmengine.config import Config

from mmfocal.engine import amp_fallback


from _helpers import ROOT
REPO = 'microsoft/FocalNet@e8514bd '
DET = REPO + 'detection/configs/focalnet/'
SEG = REPO + 'segmentation/configs/focalnet/'
SPARSE_BASE = REPO + 'detection/configs/_base_/models/sparse_rcnn_focalnet_fpn.py'
SEG_160K = REPO + 'segmentation/configs/_base_/schedules/schedule_160k.py'
# inherited unchanged (line 4 of each authors' detection config, line 3 of the Sparse R-CNN base)
MMDET2_1X = 'mmdet v2.11.0 configs/_base_/schedules/schedule_1x.py'
FP16 = 'fp16, dynamic loss scale'
FP32 = 'float32'
SIZES = {'t': 'tiny', 's': 'small', 'b': 'base'}


def _warmup(iters=500, ratio=0.001, source=MMDET2_1X, lines=(8, 9)):
    return dict(warmup_iters=(iters, f'{source}:{lines[0]}'),
                warmup_ratio=(ratio, f'{source}:{lines[1]}'))


def _mask_rcnn(size, rf, schedule, drop, deeper=False):
    """An authors' Mask R-CNN config: 1x/3x SRF/LRF share a layout; the deeper ones
    (1x only, written with 3 levels) have one line more above the optimizer."""
    if deeper:
        name = f'mask_rcnn_focalnet_{SIZES[size]}_patch4_mstrain_480-800_adamw_1x_coco_deeper.py'
    else:
        name = (f'mask_rcnn_focalnet_{SIZES[size]}_patch4_mstrain_480-800_adamw_{schedule}'
                f'_coco_{rf}.py')
    f = DET + name
    opt, steps, runner, fp16 = (74, 78, 79, 89) if deeper and size != 't' else (73, 77, 78, 88)
    milestones, epochs = ([9, 11], 12) if schedule == '1x' else ([27, 33], 36)
    return dict(drop_path=(drop, f'{f}:12'), lr=(1e-4, f'{f}:{opt}'),
                weight_decay=(0.05, f'{f}:{opt}'), milestones=(milestones, f'{f}:{steps}'),
                epochs=(epochs, f'{f}:{runner}'), precision=(FP16, f'{f}:{fp16}'),
                **_warmup())


def _tiny_3x(kind, rf):
    """Cascade Mask R-CNN, ATSS or Sparse R-CNN with FocalNet-T, 3x."""
    if kind == 'sparse':
        f = DET + ('sparse_rcnn_focalnet_tiny_fpn_300_proposals_crop_mstrain_480-800_3x_coco_'
                   f'{rf}.py')
        return dict(drop_path=(0.3, f'{f}:6'), lr=(2.5e-5, f'{SPARSE_BASE}:96'),
                    weight_decay=(1e-4, f'{SPARSE_BASE}:96'), milestones=([27, 33], f'{f}:61'),
                    epochs=(36, f'{f}:62'), precision=(FP32, f'{f}:62'), **_warmup())
    if kind == 'cascade':
        f = DET + f'cascade_mask_rcnn_focalnet_tiny_patch4_mstrain_480-800_adamw_3x_coco_{rf}.py'
        drop, opt, steps, runner, fp16 = 12, 134, 138, 139, 149
    else:
        f = DET + f'atss_focalnet_tiny_patch4_fpn_3x_coco_{rf}.py'
        drop, opt, steps, runner, fp16 = 11, 67, 71, 72, 82
    return dict(drop_path=(0.3, f'{f}:{drop}'), lr=(1e-4, f'{f}:{opt}'),
                weight_decay=(0.05, f'{f}:{opt}'), milestones=([27, 33], f'{f}:{steps}'),
                epochs=(36, f'{f}:{runner}'), precision=(FP16, f'{f}:{fp16}'), **_warmup())


def _upernet(size, rf):
    f = SEG + f'upernet_focalnet_{SIZES[size]}_patch4_512x512_160k_ade20k_{rf}.py'
    return dict(drop_path=(0.3, f'{f}:10'), lr=(6e-5, f'{f}:26'),
                weight_decay=(0.01, f'{f}:26'), max_iters=(160000, f'{SEG_160K}:7'),
                poly_power=(1.0, f'{f}:35'), min_lr=(0.0, f'{f}:35'),
                precision=(FP32, f'{SEG_160K}:3'), **_warmup(1500, 1e-6, f, (33, 34)))


MASK_RCNN_DROP = {('1x', 't'): 0.1, ('1x', 's'): 0.2, ('1x', 'b'): 0.3,
                  ('3x', 't'): 0.3, ('3x', 's'): 0.5, ('3x', 'b'): 0.5}
DEEPER_DROP = {'t': 0.2, 's': 0.2, 'b': 0.3}

AUTHORS = {}
for _s in 'tsb':
    for _sched in ('1x', '3x'):
        for _rf in ('srf', 'lrf'):
            AUTHORS[f'configs/detection/mask_rcnn_focalnet_{_s}{"_lrf" if _rf == "lrf" else ""}'
                    f'_{_sched}.py'] = _mask_rcnn(_s, _rf, _sched, MASK_RCNN_DROP[_sched, _s])
    AUTHORS[f'configs/detection/mask_rcnn_focalnet_{_s}_deeper_1x.py'] = _mask_rcnn(
        _s, 'srf', '1x', DEEPER_DROP[_s], deeper=True)
    AUTHORS[f'configs/detection/mask_rcnn_focalnet_{_s}_deeper_lrf_1x.py'] = _mask_rcnn(
        _s, 'lrf', '1x', DEEPER_DROP[_s], deeper=True)
    # no deeper 3x config from the authors: their 3x recipe of the same size
    AUTHORS[f'configs/detection/mask_rcnn_focalnet_{_s}_deeper_3x.py'] = _mask_rcnn(
        _s, 'srf', '3x', MASK_RCNN_DROP['3x', _s])
    for _rf in ('srf', 'lrf'):
        AUTHORS[f'configs/segmentation/upernet_focalnet_{_s}{"_lrf" if _rf == "lrf" else ""}'
                '_512x512_160k_ade20k.py'] = _upernet(_s, _rf)
    # no deeper UperNet config from the authors: their UperNet recipe of the same size
    AUTHORS[f'configs/segmentation/upernet_focalnet_{_s}_deeper_512x512_160k_ade20k.py'] = \
        _upernet(_s, 'srf')
for _kind, _name in (('cascade', 'cascade_mask_rcnn'), ('atss', 'atss'), ('sparse', 'sparse_rcnn')):
    for _rf in ('srf', 'lrf'):
        AUTHORS[f'configs/detection/{_name}_focalnet_t{"_lrf" if _rf == "lrf" else ""}_3x.py'] = \
            _tiny_3x(_kind, _rf)


@functools.lru_cache(maxsize=None)
def load(config: str) -> Config:
    return Config.fromfile(osp.join(ROOT, config))


def precision(optim_wrapper) -> str:
    kind = optim_wrapper.get('type', 'OptimWrapper')
    if kind == 'OptimWrapper':
        return FP32
    if kind in ('AmpOptimWrapper', 'MixedPrecisionOptimWrapper') and \
            optim_wrapper.get('dtype') in ('float16', None) \
            and optim_wrapper.get('loss_scale', 'dynamic') == 'dynamic':
        return FP16
    return f'{kind} {optim_wrapper.get("dtype")} {optim_wrapper.get("loss_scale")}'


def recipe(cfg: Config) -> dict:
    """The config's values of the fields of ``AUTHORS``."""
    warm, decay = cfg.param_scheduler[0], cfg.param_scheduler[1]
    assert warm.type == 'LinearLR' and warm.begin == 0 and not warm.by_epoch
    values = dict(
        drop_path=cfg.model.backbone.drop_path_rate, lr=cfg.optim_wrapper.optimizer.lr,
        weight_decay=cfg.optim_wrapper.optimizer.weight_decay, warmup_iters=warm.end,
        warmup_ratio=warm.start_factor, precision=precision(cfg.optim_wrapper))
    if cfg.default_scope == 'mmseg':
        assert decay.type == 'PolyLR'
        values.update(max_iters=cfg.train_cfg.max_iters, poly_power=decay.power,
                      min_lr=decay.eta_min)
    else:
        assert decay.type == 'MultiStepLR' and decay.by_epoch and decay.gamma == 0.1
        values.update(milestones=list(decay.milestones), epochs=cfg.train_cfg.max_epochs)
    return values


def focalnet_paper_configs():
    with open(osp.join(ROOT, 'metafile.yml')) as f:
        models = yaml.safe_load(f)['Models']
    return sorted(m['Config'] for m in models
                  if 'Paper Table' in m['Metadata'] and '_focalnet_' in m['Config'])


def test_the_table_covers_every_focalnet_paper_config():
    assert sorted(AUTHORS) == focalnet_paper_configs()


@pytest.mark.parametrize('config', sorted(AUTHORS))
def test_config_has_the_authors_recipe(config):
    got = recipe(load(config))
    wrong = [f'{field}: {got[field]!r} in {config}, the authors have {value!r} ({source})'
             for field, (value, source) in AUTHORS[config].items() if got[field] != value]
    assert not wrong, '\n'.join(wrong)


def test_the_three_rows_of_the_issue():
    """The values that once differed: warm-up, FocalNet-T deeper's drop path, fp16."""
    t_1x = recipe(load('configs/detection/mask_rcnn_focalnet_t_1x.py'))
    assert (t_1x['warmup_iters'], t_1x['warmup_ratio']) == (500, 0.001)
    deeper = recipe(load('configs/detection/mask_rcnn_focalnet_t_deeper_1x.py'))
    assert deeper['drop_path'] == 0.2
    for config in AUTHORS:
        mixed = recipe(load(config))['precision'] == FP16
        assert mixed == bool(re.search(r'/(mask_rcnn|cascade_mask_rcnn|atss)_focalnet', config))


# ------------------------------------------------------------------ fp16 where possible


def test_amp_falls_back_to_float32_without_a_gpu():
    cfg = Config.fromfile(osp.join(ROOT, 'configs/detection/demo_mask_rcnn_focalnet.py'))
    assert precision(cfg.optim_wrapper) == FP16  # the demo inherits the recipe
    on_gpu = cfg.copy()
    assert amp_fallback(on_gpu, device='cuda') is None
    assert on_gpu.optim_wrapper.to_dict() == cfg.optim_wrapper.to_dict()
    message = amp_fallback(cfg, device='cpu')
    assert 'float32' in message and 'cpu' in message
    assert cfg.optim_wrapper.type == 'OptimWrapper'
    assert not {'dtype', 'loss_scale'} & set(cfg.optim_wrapper)
    assert cfg.optim_wrapper.optimizer.lr == 1e-3  # the rest is kept


def test_an_explicit_optim_wrapper_drops_the_amp_arguments():
    cfg = Config(dict(optim_wrapper=dict(type='OptimWrapper', dtype='float16',
                                         loss_scale='dynamic', optimizer=dict(type='AdamW'))))
    assert amp_fallback(cfg, device='cuda') is None
    assert cfg.optim_wrapper.to_dict() == dict(type='OptimWrapper', optimizer=dict(type='AdamW'))


def test_train_builds_and_logs_the_float32_fallback_on_the_cpu(tmp_path, monkeypatch):
    """tools/train.py on a CPU: the mixed-precision demo config builds an OptimWrapper, and
    the run's log carries the warning."""
    import sys
    import torch
    if torch.cuda.is_available():
        pytest.skip('a CUDA device is present: no fallback to see')
    sys.path.insert(0, osp.join(ROOT, 'tools'))
    import train
    from mmengine.optim import OptimWrapper
    from mmengine.runner import Runner
    config = tmp_path / 'config.py'
    config.write_text(
        f"_base_ = {osp.join(ROOT, 'configs/detection/demo_mask_rcnn_focalnet.py')!r}\n"
        "train_dataloader = dict(dataset=dict(data_root={!r}))\n".format(str(tmp_path)))
    monkeypatch.setattr(sys, 'argv', ['train.py', str(config), '--work-dir', str(tmp_path)])
    built = {}

    def build_optim_wrapper_only(self):
        built['wrapper'] = self.build_optim_wrapper(self.optim_wrapper)

    monkeypatch.setattr(Runner, 'train', build_optim_wrapper_only)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(train, 'end_distributed', lambda: None)
        train.main()
    assert type(built['wrapper']) is OptimWrapper
    (log, ) = [p for p in tmp_path.rglob('*.log')]
    text = log.read_text()
    assert 'WARNING' in text and 'trains in float32 (OptimWrapper) instead' in text


def test_mixed_precision_wrapper_is_float32_with_a_warning_where_no_device_has_amp(
        monkeypatch):
    """What mmdet's and mmseg's own train.py build from the configs' wrapper: mmengine's
    AmpOptimWrapper on a GPU, a float32 OptimWrapper and a logged warning on the CPU."""
    import torch
    from mmengine.logging import MMLogger
    from mmengine.optim import OptimWrapper
    from mmengine.registry import OPTIM_WRAPPERS

    from mmfocal.engine import precision
    optimizer = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
    cfg = dict(type='MixedPrecisionOptimWrapper', dtype='float16', loss_scale='dynamic',
               optimizer=optimizer)
    warnings = []
    monkeypatch.setattr(MMLogger.get_current_instance(), 'warning', warnings.append)
    monkeypatch.setattr(precision, 'get_device', lambda: 'cpu')
    wrapper = OPTIM_WRAPPERS.build(dict(cfg))
    assert type(wrapper) is OptimWrapper
    assert len(warnings) == 1 and 'float32' in warnings[0] and 'cpu' in warnings[0]
    built = {}
    monkeypatch.setattr(precision, 'AmpOptimWrapper', lambda **kw: built.update(kw) or 'amp')
    monkeypatch.setattr(precision, 'get_device', lambda: 'cuda')
    assert OPTIM_WRAPPERS.build(dict(cfg)) == 'amp'
    assert built['dtype'] == 'float16' and built['loss_scale'] == 'dynamic'
