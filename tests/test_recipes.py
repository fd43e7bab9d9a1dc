"""Every FocalNet paper config against the FocalNet authors' recipe.

``AUTHORS`` holds, for each config of a paper row, the values of the authors' mmdet 2 /
mmseg 0 config it reproduces, each with the file and line it is read from (the authors'
repository microsoft/FocalNet at commit e8514bd, and the mmdet 2.11 base schedule their
detection configs inherit unchanged). A later edit of a config or of a base file that moves
a value away from the authors' fails here, naming the value and its source.

``AUTHORS_CLS`` does the same for the ImageNet classification configs (every row of both
papers), against the authors' ImageNet recipes: microsoft/FocalNet's and
microsoft/Focal-Transformer's config.py, main.py, optimizer.py, data/build.py and yamls, and
the papers where the configs follow them (docs/en/classification_recipes.md says where and
why). Those configs inherit mmpretrain's bases, so their tests need mmpretrain.
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
                  if 'Paper Table' in m['Metadata'] and '_focalnet_' in m['Config']
                  and not m['Config'].startswith('configs/classification/'))


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


# ------------------------------------------------------------------ ImageNet classification

FN = 'microsoft/FocalNet@f4fcc2f '  # config.py of the paper's lr and warm-up (HEAD: 1e-4, 5)
FN_CFG = FN + 'config.py'
FT = 'microsoft/Focal-Transformer@57bb303 '
FT_CFG = FT + 'config.py'
FN_PAPER = 'FocalNet paper (arXiv 2203.11926v1), appendix A'
FT_PAPER = 'Focal Transformer paper (arXiv 2107.00641v1), Sec. 4.1'
SWIN_FT = ('microsoft/Swin-Transformer@f0ca48c '
           'configs/swin/swin_base_patch4_window7_224_22kto1k_finetune.yaml')
MIXUP_CUTMIX = (('Mixup', 0.8), ('CutMix', 1.0))
FN_README_LINES = {('t', 'srf'): 45, ('t', 'lrf'): 52, ('s', 'srf'): 66, ('s', 'lrf'): 73,
                   ('b', 'srf'): 87, ('b', 'lrf'): 94}
FN_DROP = {'t': 0.2, 's': 0.3, 'b': 0.5}  # the paper's T/S/B, the yamls' line 4
FT_DROP = {'t': 0.2, 's': 0.2, 'b': 0.3}  # the paper's; the yamls have 0.2/0.3/0.5
FT_BATCH_LINES = {'t': '155-156', 's': '162-163', 'b': '169-171 (64 x 8 x 2 accumulation)'}


def _focalnet_1k(size, rf=None, yaml=None):
    """A FocalNet ImageNet-1K row: config.py's defaults; the drop path of its yaml, or of
    the paper's size where the authors published no config."""
    if rf in FN_README_LINES:
        batch = f'{FN}classification/README.md:{FN_README_LINES[size, rf]} (8 GPUs x 128)'
    else:  # no command for this variant: config.py's 128 per GPU on the README's 8 GPUs
        batch = f'{FN_CFG}:23 (128 per GPU, 8 GPUs as {FN}classification/README.md:44)'
    drop = (FN_DROP[size], f'{FN}configs/{yaml}:4') if yaml else (FN_DROP[size], FN_PAPER)
    return dict(
        epochs=(300, f'{FN_CFG}:86'), batch=(1024, batch), lr_batch=(1024, batch),
        lr=(1e-3, f'{FN_CFG}:89 x {FN}main.py:327'), warmup_epochs=(20, f'{FN_CFG}:87'),
        warmup_from=(1e-6, f'{FN_CFG}:90 x {FN}main.py:328'),
        eta_min=(1e-5, f'{FN_CFG}:91 x {FN}main.py:329'),
        per_iteration=(True, f'{FN}lr_scheduler.py:21-30'),
        weight_decay=(0.05, f'{FN_CFG}:88'),
        no_decay=(('1-D', ), f'{FN}optimizer.py:43 (classification/focalnet.py:485-490 would '
                  'take decay off every parameter: docs/en/classification_recipes.md)'),
        clip=(5.0, f'{FN_CFG}:93'), batch_augments=(MIXUP_CUTMIX, f'{FN_CFG}:136-144'),
        label_smoothing=(0.1, f'{FN_CFG}:59'),
        randaugment=('rand-m9-mstd0.5-inc1', f'{FN_CFG}:128'),
        random_erasing=((0.25, 'pixel'), f'{FN_CFG}:130-132'), drop_path=drop,
        train_crop=((224, 'bicubic'), f'{FN_CFG}:29-31'),
        test_crop=((256, 224, 'bicubic'), f'{FN}data/build.py:125-131'))


def _focalnet_22k_to_1k(resolution):
    """FocalNet-B / -L fine-tuned from ImageNet-22K: the paper's fine-tuning, Swin's where it
    is silent, the 1K recipe's augmentation (cross-entropy with label smoothing once Mixup is
    off: main.py:106-107)."""
    recipe = _focalnet_1k('b')  # the 1K recipe; its drop path is replaced
    recipe.update(
        epochs=(30, FN_PAPER), lr=(3e-5, FN_PAPER), drop_path=(0.3, FN_PAPER),
        batch_augments=((), FN_PAPER), label_smoothing=(0.1, f'{FN}main.py:106-107'),
        warmup_epochs=(5, f'{SWIN_FT}:12'),
        warmup_from=(3e-8, f'{SWIN_FT}:14-15 (2e-8 / 2e-5 of the lr)'),
        eta_min=(3e-7, f'{SWIN_FT}:14,16 (2e-7 / 2e-5 of the lr)'),
        weight_decay=(1e-8, f'{SWIN_FT}:13'))
    if resolution == 384:
        recipe.update(train_crop=((384, 'bicubic'), FN_PAPER + ' (fine-tuned at 384)'),
                      test_crop=((438, 384, 'bicubic'), f'{FN}data/build.py:125-131'))
    return recipe


def _focal_transformer(size, conv):
    yaml = f'{FT}configs/focal_{SIZES[size]}{"_useconv" if conv else ""}_patch4_window7_224.yaml'
    batch = f'{FT_PAPER}; {FT}classification/get_started.md:{FT_BATCH_LINES[size]}'
    return dict(
        epochs=(300, f'{FT_PAPER}; {FT_CFG}:99'), batch=(1024, batch), lr_batch=(1024, batch),
        lr=(1e-3, f'{FT_PAPER}; {FT_CFG}:102 x {FT}main.py:327'),
        warmup_epochs=(20, f'{FT_PAPER}; {FT_CFG}:100'),
        warmup_from=(1e-5, f'{FT_PAPER} (code: {FT_CFG}:103, 1e-6)'),
        eta_min=(1e-5, f'{FT_CFG}:104 x {FT}main.py:329'),
        per_iteration=(True, f'{FT}lr_scheduler.py:21-30'),
        weight_decay=(0.05, f'{FT_PAPER}; {FT_CFG}:101'),
        no_decay=(('1-D', 'position-bias tables'),
                  f'{FT}optimizer.py:43, classification/focal_transformer.py:1066-1071'),
        clip=(5.0, f'{FT_PAPER}; {FT_CFG}:106'),
        batch_augments=(MIXUP_CUTMIX, f'{FT_CFG}:149-157'),
        label_smoothing=(0.1, f'{FT_CFG}:59'),
        randaugment=('rand-m9-mstd0.5-inc1', f'{FT_CFG}:141'),
        random_erasing=(None, f'{FT_PAPER} (code: {FT_CFG}:143-145, 0.25)'),
        drop_path=(FT_DROP[size], f'{FT_PAPER} (code: {yaml}:4)'),
        train_crop=((224, 'bicubic'), f'{FT_CFG}:29-31'),
        test_crop=((256, 224, 'bicubic'), f'{FT}data/build.py:125-131'))


CLS = 'configs/classification/'
AUTHORS_CLS = {}
for _s in 'tsb':
    for _rf in ('srf', 'lrf'):
        AUTHORS_CLS[f'{CLS}focalnet-{_s}-{_rf}_8xb128_in1k.py'] = _focalnet_1k(
            _s, _rf, f'focalnet_{SIZES[_s]}_{_rf}.yaml')
    AUTHORS_CLS[f'{CLS}focalnet-{_s}-srf-overlap_8xb128_in1k.py'] = _focalnet_1k(_s)
    AUTHORS_CLS[f'{CLS}focalnet-{_s}-srf-deeper_8xb128_in1k.py'] = _focalnet_1k(_s)
    AUTHORS_CLS[f'{CLS}focalnet-{_s}-iso-p16_8xb128_in1k.py'] = dict(
        _focalnet_1k(_s), drop_path=(0.2, f'{FN}configs/focalnet_{SIZES[_s]}_iso.yaml:4'))
    for _conv in (False, True):
        AUTHORS_CLS[f'{CLS}focal-transformer-{_s}{"-useconv" if _conv else ""}_8xb128_in1k.py'] = \
            _focal_transformer(_s, _conv)
for _variant in ('b-srf', 'l-fl3'):
    for _res in (224, 384):
        AUTHORS_CLS[f'{CLS}focalnet-{_variant}_in21k-pre_8xb128_in1k'
                    f'{"-384px" if _res == 384 else ""}.py'] = _focalnet_22k_to_1k(_res)


def _randaugment(step) -> str:
    """timm's name of mmpretrain's RandAugment (rand-m{level}-mstd{std}-inc1, 2 ops a
    picture, levels out of 10), or the step itself where it has no such name."""
    if step.get('policies') == 'timm_increasing' and step.get('num_policies') == 2 and \
            step.get('total_level') == 10:
        return f"rand-m{step['magnitude_level']}-mstd{step['magnitude_std']}-inc1"
    return repr(step)


def _random_erasing(step):
    """(probability, timm's mode) of mmpretrain's RandomErasing: 'rand' with the dataset's
    std as fill_std draws normal noise per pixel, timm's 'pixel' mode."""
    if step is None:
        return None
    pixel = step.get('mode') == 'rand' and step.get('fill_std') is not None and \
        step.get('min_area_ratio') == 0.02 and abs(step.get('max_area_ratio') - 1 / 3) < 1e-9
    return (step['erase_prob'], 'pixel' if pixel else repr(step))


@functools.lru_cache(maxsize=None)
def _no_decay_kinds(config: str) -> tuple:
    """The kinds of the classifier's parameters (a narrow copy) the config's optimizer
    keeps weight decay off: '1-D' (norms, biases, layer scales), 'position-bias tables'; a
    kind the optimizer splits is reported as such."""
    from mmengine.optim import build_optim_wrapper

    from test_classification_zoo import _narrow, build, load
    cfg = load(config)
    model = build(_narrow(cfg.model))
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper.copy())
    decay = {id(p): group['weight_decay'] for group in wrapper.optimizer.param_groups
             for p in group['params']}
    kinds = {}
    for name, p in model.named_parameters():
        kind = '1-D' if p.ndim == 1 else (
            'position-bias tables' if 'relative_position_bias_table' in name else 'other')
        kinds.setdefault(kind, set()).add(decay[id(p)] == 0)
    return tuple(sorted(kind if off == {True} else f'some {kind}'
                        for kind, off in kinds.items() if True in off))


def recipe_cls(config: str) -> dict:
    """The classification config's values of the fields of ``AUTHORS_CLS``."""
    from test_classification_zoo import load
    cfg = load(config)
    warm, cosine = cfg.param_scheduler
    assert warm.type == 'LinearLR' and warm.by_epoch and warm.begin == 0
    assert cosine.type == 'CosineAnnealingLR' and cosine.by_epoch
    assert cosine.begin == warm.end and cosine.end == cfg.train_cfg.max_epochs
    gpus = int(re.search(r'_(\d+)xb\d+_', config).group(1))
    optimizer = cfg.optim_wrapper.optimizer
    assert optimizer.type == 'AdamW' and optimizer.betas == (0.9, 0.999) and optimizer.eps == 1e-8
    steps = {step['type']: step for step in cfg.train_dataloader.dataset.pipeline}
    test = {step['type']: step for step in cfg.test_dataloader.dataset.pipeline}
    assert test['ResizeEdge']['edge'] == 'short'
    augments = (cfg.model.train_cfg or {}).get('augments', [])
    assert (cfg.model.train_cfg or {}).get('probs') is None  # one of them, chosen uniformly
    loss = cfg.model.head.loss
    assert loss.type == 'LabelSmoothLoss' and loss.mode == 'original'
    return dict(
        epochs=cfg.train_cfg.max_epochs, batch=gpus * cfg.train_dataloader.batch_size,
        lr_batch=cfg.auto_scale_lr.base_batch_size, lr=optimizer.lr,
        warmup_epochs=warm.end, warmup_from=warm.start_factor * optimizer.lr,
        eta_min=cosine.eta_min,
        per_iteration=warm.convert_to_iter_based and cosine.convert_to_iter_based,
        weight_decay=optimizer.weight_decay, no_decay=_no_decay_kinds(config),
        clip=cfg.optim_wrapper.clip_grad.max_norm,
        batch_augments=tuple((a['type'], a['alpha']) for a in augments),
        label_smoothing=loss.label_smooth_val,
        randaugment=_randaugment(steps['RandAugment']),
        random_erasing=_random_erasing(steps.get('RandomErasing')),
        drop_path=cfg.model.backbone.drop_path_rate,
        train_crop=(steps['RandomResizedCrop']['scale'],
                    steps['RandomResizedCrop']['interpolation']),
        test_crop=(test['ResizeEdge']['scale'], test['CenterCrop']['crop_size'],
                   test['ResizeEdge']['interpolation']))


def _same(got, expected) -> bool:
    if isinstance(expected, float) and isinstance(got, (int, float)):
        return abs(got - expected) <= 1e-9 * abs(expected)
    return got == expected


def test_the_table_covers_every_classification_config():
    with open(osp.join(ROOT, 'metafile.yml')) as f:
        models = yaml.safe_load(f)['Models']
    assert sorted(AUTHORS_CLS) == sorted(
        m['Config'] for m in models if m['Config'].startswith(CLS))


@pytest.mark.parametrize('config', sorted(AUTHORS_CLS))
def test_classification_config_has_the_authors_recipe(config):
    from test_classification_zoo import needs_mmpretrain
    if needs_mmpretrain.args[0]:
        pytest.skip(needs_mmpretrain.kwargs['reason'])
    got = recipe_cls(config)
    wrong = [f'{field}: {got[field]!r} in {config}, the authors have {value!r} ({source})'
             for field, (value, source) in AUTHORS_CLS[config].items()
             if not _same(got[field], value)]
    assert not wrong, '\n'.join(wrong)


def test_focal_transformer_configs_differ_from_the_code_only_where_the_paper_speaks():
    """The Focal Transformer fields whose source is the paper against the code's value:
    each is one of the differences docs/en/classification_recipes.md lists."""
    with open(osp.join(ROOT, 'docs', 'en', 'classification_recipes.md')) as f:
        doc = f.read()
    paper_over_code = {field for recipe in AUTHORS_CLS.values()
                       for field, (_, source) in recipe.items() if '(code: ' in source}
    assert paper_over_code == {'warmup_from', 'random_erasing', 'drop_path'}
    for needle in ('random erasing', 'drop path', 'warm-up', '1e-5'):
        assert needle in doc
