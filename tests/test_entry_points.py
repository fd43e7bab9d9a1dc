"""Checkpoints trained by tools/train.py in the toolboxes' own entry points.

Each entry point runs in a fresh interpreter that never imports mmfocal itself: the config's
``custom_imports`` does, as it does for a user. mmdet's and mmseg's tools are the copies
installed in their packages (``.mim/tools``). torch loads with ``weights_only=True``.
"""
import glob
import importlib
import json
import os
import os.path as osp
import textwrap

import pytest
import torch

from mmfocal.compat import WEIGHTS_ONLY_DEFAULT

from _helpers import PYTHON, ROOT, run_checked
from _trained import ITERATIONS

pytestmark = pytest.mark.slow


def run(args, cwd=ROOT, timeout=900):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]))
    result = run_checked(args, cwd=cwd, env=env, timeout=timeout)
    return result.stdout + result.stderr


def run_python(code, cwd):
    """``code`` in a fresh interpreter, after checking that mmfocal is not imported; returns
    what the code printed on lines starting with 'RESULT '."""
    prelude = 'import sys\nassert "mmfocal" not in sys.modules\n'
    out = run([PYTHON, '-c', prelude + textwrap.dedent(code)], cwd=cwd)
    return '\n'.join(line[len('RESULT '):] for line in out.splitlines()
                     if line.startswith('RESULT '))


def toolbox_tool(toolbox, name):
    """The copy of ``tools/NAME`` installed in the toolbox's package."""
    package = osp.dirname(importlib.import_module(toolbox).__file__)
    return osp.join(package, '.mim', 'tools', name)


@pytest.fixture(scope='module')
def det_run(trained):
    """The demo detector of the tests' store (24 iterations of mmfocal's train.py)."""
    return trained('mask_rcnn_focalnet')


@pytest.fixture(scope='module')
def seg_run(trained):
    """The demo segmentor (Focal Transformer UperNet) of the tests' store."""
    return trained('upernet_focal_transformer')


@pytest.mark.skipif(not WEIGHTS_ONLY_DEFAULT, reason=f'torch {torch.__version__} < 2.6 '
                    'loads with weights_only=False by default: nothing to allow-list')
def test_checkpoint_needs_the_allow_list(det_run):
    """The checkpoint holds mmengine's HistoryBuffer: plain torch.load refuses it until
    mmfocal is imported (in a fresh interpreter, so nothing was allow-listed before)."""
    checkpoint = det_run.checkpoint
    out = run_python(f'''
        import pickle, torch
        try:
            torch.load({checkpoint!r}, map_location='cpu')
        except pickle.UnpicklingError as exc:
            print('RESULT refused:', 'HistoryBuffer' in str(exc))
        import mmfocal
        ckpt = torch.load({checkpoint!r}, map_location='cpu', weights_only=True)
        print('RESULT loaded', type(ckpt['message_hub']['log_scalars']['train/loss']).__name__)
    ''', ROOT)
    assert 'refused: True' in out and 'loaded HistoryBuffer' in out


def test_import_allows_exactly_the_mmengine_globals_once():
    """mmfocal's readers admit exactly these globals; on torch >= 2.6 so does every
    ``torch.load(weights_only=True)``, under the same names. Importing again adds none."""
    out = run_python('''
        import json, mmdet.models, mmseg.models, mmengine.runner, torch  # what mmfocal imports

        def listed():
            if not hasattr(torch.serialization, 'get_safe_globals'):  # torch < 2.4
                return set()
            return set(torch.serialization.get_safe_globals())

        before = listed()
        import mmfocal
        from mmfocal import compat
        after = listed()
        mmfocal.allow_mmengine_checkpoints()
        assert listed() == after
        print('RESULT', json.dumps(dict(
            mmfocal=sorted(compat._ALLOWED), torch=sorted(g[1] for g in after - before),
            weights_only_default=compat.WEIGHTS_ONLY_DEFAULT)))
    ''', ROOT)
    result = json.loads(out)
    names = sorted([
        'mmengine.logging.history_buffer.HistoryBuffer', 'numpy.ndarray', 'numpy.dtype',
        'collections.Counter', '_codecs.encode', 'builtins.getattr'] + [
        f'numpy.{core}.multiarray.{name}' for core in ('core', '_core')
        for name in ('_reconstruct', 'scalar')] + [
        f'numpy.dtypes.{t}DType' for t in ('Float64', 'Float32', 'Int64', 'Int32', 'Bool')])
    assert result['mmfocal'] == names
    assert result['torch'] == (names if result['weights_only_default'] else [])


def test_det_inferencer(det_run, tmp_path):
    image = det_run.images[0]
    out = run_python(f'''
        import json
        from mmdet.apis import DetInferencer
        inferencer = DetInferencer(model={det_run.config!r}, weights={det_run.checkpoint!r},
                                   device='cpu')
        result = inferencer({image!r}, out_dir={str(tmp_path)!r}, no_save_pred=False)
        print('RESULT', json.dumps(dict(n=len(result['predictions']),
                              keys=sorted(result['predictions'][0]))))
    ''', ROOT)
    result = json.loads(out)
    assert result['n'] == 1 and {'bboxes', 'labels', 'scores'} <= set(result['keys'])
    stem = osp.splitext(osp.basename(image))[0]
    assert osp.isfile(tmp_path / 'vis' / osp.basename(image))
    assert osp.isfile(tmp_path / 'preds' / f'{stem}.json')


def test_init_detector_and_inference_detector(det_run, tmp_path):
    """The weights init_detector loads are those of the checkpoint."""
    out = run_python(f'''
        import torch
        from mmdet.apis import inference_detector, init_detector
        model = init_detector({det_run.config!r}, {det_run.checkpoint!r}, device='cpu')
        sample = inference_detector(model, {det_run.images[0]!r})
        key = 'backbone.layers.0.blocks.0.modulation.f.weight'
        print('RESULT', type(model.backbone).__name__,
              tuple(sample.pred_instances.bboxes.shape[1:]))
        torch.save(model.state_dict()[key], 'loaded.pt')
    ''', tmp_path)
    assert 'FocalNet (4,)' in out
    from mmfocal.models.checkpoint import read_checkpoint
    expected = read_checkpoint(det_run.checkpoint)['state_dict'][
        'backbone.layers.0.blocks.0.modulation.f.weight']
    loaded = torch.load(tmp_path / 'loaded.pt', weights_only=True)
    torch.testing.assert_close(loaded, expected)


def test_mmdet_test_py(det_run, tmp_path):
    run([PYTHON, toolbox_tool('mmdet', 'test.py'), det_run.config, det_run.checkpoint,
         '--work-dir', str(tmp_path)])
    (log, ) = glob.glob(str(tmp_path / '*' / '*.json'))
    with open(log) as f:
        metrics = json.loads(f.read().strip().splitlines()[-1])
    for key in ('coco/bbox_mAP', 'coco/segm_mAP'):
        assert 0 <= metrics[key] <= 1


def test_mmdet_train_py_resume(det_run, tmp_path):
    """mmdet's train.py --resume continues the run of mmfocal's train.py with its next
    epoch."""
    last = osp.basename(det_run.checkpoint)
    assert last == f'epoch_{ITERATIONS}.pth'  # epochs of one iteration
    resumed = str(tmp_path / 'resumed')
    os.makedirs(resumed)
    with open(det_run.checkpoint, 'rb') as src, open(osp.join(resumed, last), 'wb') as dst:
        dst.write(src.read())
    with open(osp.join(resumed, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(resumed, last))
    log = run([PYTHON, toolbox_tool('mmdet', 'train.py'), det_run.config, '--work-dir',
               resumed, '--resume', '--cfg-options', f'train_cfg.max_epochs={ITERATIONS + 1}'])
    assert f'resumed epoch: {ITERATIONS}, iter: {ITERATIONS}' in log
    assert f'Epoch(train) [{ITERATIONS + 1}][1/1]' in log
    assert f'Epoch(train) [{ITERATIONS}][' not in log
    from mmfocal.models.checkpoint import read_checkpoint
    second = read_checkpoint(osp.join(resumed, f'epoch_{ITERATIONS + 1}.pth'))
    assert (second['meta']['epoch'], second['meta']['iter']) == (ITERATIONS + 1, ITERATIONS + 1)


def test_mmseg_inferencer(seg_run, tmp_path):
    image = seg_run.images[0]
    out = run_python(f'''
        from mmseg.apis import MMSegInferencer
        inferencer = MMSegInferencer(model={seg_run.config!r}, weights={seg_run.checkpoint!r},
                                     device='cpu')
        result = inferencer({image!r}, out_dir={str(tmp_path)!r}, return_datasamples=True)
        print('RESULT', type(inferencer.model.backbone).__name__,
              tuple(result.pred_sem_seg.data.shape))
    ''', ROOT)
    import cv2
    height, width = cv2.imread(image).shape[:2]
    assert f'FocalTransformer (1, {height}, {width})' in out
    assert osp.isfile(tmp_path / 'vis' / osp.basename(image))


def test_mmseg_test_py(seg_run, tmp_path):
    run([PYTHON, toolbox_tool('mmseg', 'test.py'), seg_run.config, seg_run.checkpoint,
         '--work-dir', str(tmp_path)])
    (log, ) = glob.glob(str(tmp_path / '*' / '*.json'))
    with open(log) as f:
        metrics = json.loads(f.read().strip().splitlines()[-1])
    assert 0 <= metrics['mIoU'] <= 100 and 0 < metrics['aAcc'] <= 100


def test_demo_trainings_draw_the_backbone(det_run, seg_run):
    """The demo configs turn FocalMapsHook on: at the last iteration of each run, the
    pictures are in the visualizer's local backend."""
    drawn = {}
    for task, run_ in (('det', det_run), ('seg', seg_run)):
        drawn[task] = sorted(osp.basename(p) for p in glob.glob(
            osp.join(run_.work_dir, '*', 'vis_data', 'vis_image', '*.png')))
    assert drawn['det'] == [f'focalnet_maps_{ITERATIONS}.png']
    assert drawn['seg'] == sorted([f'focal_transformer_stage{i}_{ITERATIONS}.png'
                                   for i in range(4)] +
                                  [f'focal_transformer_heads_{ITERATIONS}.png'])
