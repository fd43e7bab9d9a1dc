"""FocalMapsHook: found from mmdet's and mmseg's scopes, draws what
tools/analysis/visualize_focal.py draws into the runner's visualizer, and leaves the
training unchanged."""
import glob
import os.path as osp
import sys

import cv2
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmfocal.engine import FocalMapsHook

from _helpers import ROOT
sys.path.insert(0, osp.join(ROOT, 'tools', 'dataset_converters'))
import make_demo_data  # noqa: E402

SEG_FOCALNET = osp.join(ROOT, 'configs/segmentation/demo_upernet_focalnet.py')
SEG_FOCAL_TRANSFORMER = osp.join(ROOT, 'configs/segmentation/demo_upernet_focal_transformer.py')


@pytest.mark.parametrize('toolbox', ['mmdet', 'mmseg'])
def test_registered_for_both_toolboxes(toolbox):
    from mmengine.registry import DefaultScope
    hooks = __import__(f'{toolbox}.registry', fromlist=['HOOKS']).HOOKS
    with DefaultScope.overwrite_default_scope(toolbox):
        hook = hooks.build(dict(type='FocalMapsHook', interval=3, stages=[1, 2]))
    assert isinstance(hook, FocalMapsHook) and (hook.interval, hook.stages) == (3, [1, 2])


@pytest.mark.parametrize('kwargs, match', [
    (dict(interval=0), 'interval must be a positive int'),
    (dict(interval=2.5), 'interval must be a positive int'),
    (dict(image_index=-1), 'image_index must be a non-negative int'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FocalMapsHook(**kwargs)


@pytest.fixture(scope='module')
def ade(tmp_path_factory):
    out = tmp_path_factory.mktemp('demo')
    make_demo_data.main(['--out', str(out), '--task', 'seg', '--num-train', '4',
                         '--num-val', '2', '--size', '96'])
    return str(out / 'ade' / 'ADEChallengeData2016')


def train(config, data_root, work_dir, hooks):
    """Three iterations of a demo segmentor; returns the runner after training."""
    cfg = Config.fromfile(config)
    for split in ('train', 'val', 'test'):
        loader = cfg[f'{split}_dataloader']
        loader.dataset.data_root = data_root
        loader.num_workers, loader.persistent_workers = 0, False
    cfg.train_dataloader.batch_size = 2
    cfg.model.data_preprocessor.size = (64, 64)
    cfg.train_dataloader.dataset.pipeline[2].scale = (128, 64)
    cfg.train_dataloader.dataset.pipeline[3].crop_size = (64, 64)
    cfg.val_dataloader.dataset.pipeline[1].scale = (128, 64)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=3, val_begin=100)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=100)
    cfg.default_hooks.logger.interval = 1
    cfg.custom_hooks = hooks
    cfg.work_dir = str(work_dir)
    # mmseg names its visualizer 'visualizer': one instance per process unless renamed
    cfg.experiment_name = cfg.visualizer.name = osp.basename(str(work_dir))
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


def drawn(work_dir):
    return sorted(osp.basename(p) for p in glob.glob(
        osp.join(work_dir, '*', 'vis_data', 'vis_image', '*.png')))


def test_focalnet_maps_while_training_leave_the_training_unchanged(ade, tmp_path):
    """Interval 2 of 3 iterations: drawn after iterations 2 and 3 (the last); the weights
    after training and the model's mode are those of a run without the hook."""
    plain = train(SEG_FOCALNET, ade, tmp_path / 'plain', [])
    hooked = train(SEG_FOCALNET, ade, tmp_path / 'hooked',
                   [dict(type='FocalMapsHook', interval=2, stages=[2, 3])])
    assert drawn(tmp_path / 'plain') == []
    assert drawn(tmp_path / 'hooked') == ['focalnet_maps_2.png', 'focalnet_maps_3.png']
    expected, got = plain.model.state_dict(), hooked.model.state_dict()
    assert expected.keys() == got.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0, msg=key)
    assert hooked.model.training
    # the panel of visualize_focal: 2 stage rows, image + 2 gates + global gate + modulator
    (path, ) = glob.glob(str(tmp_path / 'hooked' / '*' / 'vis_data' / 'vis_image' /
                             'focalnet_maps_3.png'))
    image = hooked.val_loop.dataloader.dataset.get_data_info(0)['img_path']
    height, width = cv2.imread(image).shape[:2]
    assert cv2.imread(path).shape == (2 * (height + 18), 5 * width, 3)


def test_focal_transformer_tables_while_training(ade, tmp_path):
    runner = train(SEG_FOCAL_TRANSFORMER, ade, tmp_path,
                   [dict(type='FocalMapsHook', interval=5)])
    assert drawn(tmp_path) == sorted(
        [f'focal_transformer_stage{i}_3.png' for i in range(4)] +
        ['focal_transformer_heads_3.png'])
    assert runner.model.training


def test_focalnet_maps_need_a_validation_set(ade, tmp_path):
    cfg_hooks = [dict(type='FocalMapsHook', interval=1)]
    cfg = Config.fromfile(SEG_FOCALNET)
    cfg.train_dataloader.dataset.data_root = ade
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=1)
    cfg.custom_hooks = cfg_hooks
    cfg.work_dir = str(tmp_path)
    cfg.experiment_name = cfg.visualizer.name = 'no_val'
    with pytest.raises(ValueError, match='needs val_dataloader and val_cfg'):
        Runner.from_cfg(cfg).train()


def test_what_is_drawn_is_what_the_backbone_declares():
    """Each backbone names its drawing; one that names none is refused with the choices, and
    the drawing code (module, hook, tool) names no backbone."""
    import re

    from mmfocal.models.backbones import FocalNet, FocalTransformer
    from mmfocal.visualization import DRAWINGS, drawing_of
    assert drawing_of(FocalNet.__new__(FocalNet)).needs_image
    assert not drawing_of(FocalTransformer.__new__(FocalTransformer)).needs_image
    with pytest.raises(ValueError, match=r"Module has no pictures .*'gates_and_modulator', "
                                         r"'position_bias_tables'.*\['FocalNet', "
                                         r"'FocalTransformer'\]"):
        drawing_of(torch.nn.Module())
    assert sorted(DRAWINGS) == ['gates_and_modulator', 'position_bias_tables']
    for path in ('mmfocal/visualization.py', 'mmfocal/engine/focal_maps_hook.py',
                 'tools/analysis/visualize_focal.py'):
        with open(osp.join(ROOT, path)) as f:
            code = re.sub(r'"""(.|\n)*?"""', '', f.read())
        assert not re.search(r"'Focal ?(Net|Transformer)'", code), path
