"""tools/: training, resuming, evaluating (COCO AP, mIoU), torchrun with gloo on CPU, the
checkpoint converter, get_flops and the complexity checker, on tiny datasets of the demo's
generator (tools/dataset_converters/make_demo_data.py: shapes of four classes) and the
papers' configs shrunk through --cfg-options to those classes."""
import glob
import json
import os
import os.path as osp
import pickle
import socket
import subprocess
import sys
import textwrap

import pytest
import torch
import yaml

from _helpers import PYTHON, ROOT, run_checked, write_demo_data
TOOLS = osp.join(ROOT, 'tools')
DET_CONFIG = 'configs/detection/mask_rcnn_focalnet_t_1x.py'
SEG_CONFIG = 'configs/segmentation/upernet_focalnet_t_512x512_160k_ade20k.py'
sys.path.insert(0, TOOLS)
sys.path.insert(0, osp.join(TOOLS, 'analysis'))
sys.path.insert(0, osp.join(TOOLS, 'model_converters'))
sys.path.insert(0, osp.join(TOOLS, 'dataset_converters'))
import make_demo_data  # noqa: E402

# A FocalNet with one block per stage and 32 channels, and the heads to match.
SMALL_BACKBONE = ['model.backbone.init_cfg=None', 'model.backbone.embed_dims=32',
                  'model.backbone.depths=[1,1,1,1]', 'model.backbone.drop_path_rate=0.0']
SPLITS = ('train', 'val', 'test')
LOADERS = [f'{split}_dataloader.{key}'
           for split in SPLITS
           for key in ('num_workers=0', 'persistent_workers=False')]


def dataset_options(*settings):
    """``--cfg-options`` giving the dataset of every data loader each ``KEY=VALUE``."""
    return [f'{split}_dataloader.dataset.{setting}' for split in SPLITS for setting in settings]


def classes_option(names):
    return f'metainfo.classes=({",".join(names)})'


def det_options(data_root):
    """The demo's 4 classes (CocoDataset keeps the annotations of the categories named in
    ``metainfo.classes``, COCO's 80 by default) and 96-pixel images."""
    ann = osp.join(data_root, 'annotations', 'instances_val2017.json')
    crop_branch = 'train_dataloader.dataset.pipeline.3.transforms'
    classes = len(make_demo_data.SHAPES)
    return SMALL_BACKBONE + LOADERS + dataset_options(
        f'data_root={data_root}/', classes_option(make_demo_data.SHAPES)) + [
        'model.neck.in_channels=[32,64,128,256]',
        f'model.roi_head.bbox_head.num_classes={classes}',
        f'model.roi_head.mask_head.num_classes={classes}',
        'model.train_cfg.rpn_proposal.nms_pre=200', 'model.train_cfg.rpn_proposal.max_per_img=50',
        'model.train_cfg.rcnn.sampler.num=32',
        'model.test_cfg.rpn.nms_pre=100', 'model.test_cfg.rpn.max_per_img=20',
        'model.test_cfg.rcnn.score_thr=0.0', 'model.test_cfg.rcnn.max_per_img=10',
        f'val_evaluator.ann_file={ann}', f'test_evaluator.ann_file={ann}',
        f'{crop_branch}.0.0.scales=[(96,96)]', f'{crop_branch}.1.0.scales=[(96,96)]',
        f'{crop_branch}.1.1.crop_size=(64,64)', f'{crop_branch}.1.2.scales=[(96,96)]',
        'val_dataloader.dataset.pipeline.1.scale=(96,96)',
        'test_dataloader.dataset.pipeline.1.scale=(96,96)',
        'train_cfg.val_interval=100', 'default_hooks.logger.interval=1', 'randomness.seed=0',
    ]


def seg_options(data_root):
    """The demo's background and 4 classes with ADE20K's conventions (ADE20KDataset takes
    only ADE20K's class names; the demo configs load them so too) and 64-pixel images."""
    classes = len(make_demo_data.SEG_CLASSES)
    return SMALL_BACKBONE + LOADERS + dataset_options(
        'type=BaseSegDataset', f'data_root={data_root}', 'reduce_zero_label=True',
        classes_option(make_demo_data.SEG_CLASSES)) + [
        'model.decode_head.in_channels=[32,64,128,256]', 'model.decode_head.channels=32',
        'model.auxiliary_head.in_channels=128', 'model.auxiliary_head.channels=16',
        f'model.decode_head.num_classes={classes}',
        f'model.auxiliary_head.num_classes={classes}',
        'model.data_preprocessor.size=(64,64)',
        'train_dataloader.dataset.pipeline.2.scale=(128,64)',
        'train_dataloader.dataset.pipeline.3.crop_size=(64,64)',
        'val_dataloader.dataset.pipeline.1.scale=(128,64)',
        'test_dataloader.dataset.pipeline.1.scale=(128,64)',
        'train_cfg.max_iters=2', 'train_cfg.val_interval=100',
        'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1',
        'randomness.seed=0',
    ]


def run(args, env=None, timeout=900):
    return run_checked(args, env=dict(os.environ, **(env or {})), timeout=timeout)


def train(config, work_dir, options, *extra):
    return run([PYTHON, 'tools/train.py', config, '--work-dir', str(work_dir), *extra,
                '--cfg-options', *options])


def read_metrics(work_dir):
    """The metrics tools/test.py wrote to WORK_DIR/TIMESTAMP/TIMESTAMP.json."""
    (metrics, ) = glob.glob(osp.join(work_dir, '*', '*.json'))
    with open(metrics) as f:
        return json.load(f)


def evaluate(config, checkpoint, work_dir, options, *extra):
    """tools/test.py; returns the metrics it wrote."""
    run([PYTHON, 'tools/test.py', config, str(checkpoint), '--work-dir', str(work_dir),
         *extra, '--cfg-options', *options])
    return read_metrics(work_dir)


def load_mmengine_checkpoint(path):
    from mmfocal.compat import allow_mmengine_checkpoints, load_weights
    allow_mmengine_checkpoints()
    return load_weights(path)


@pytest.fixture(scope='module')
def coco(tmp_path_factory):
    return write_demo_data(tmp_path_factory.mktemp('demo'), 'det', 4, 2, 96)


@pytest.fixture(scope='module')
def ade20k(tmp_path_factory):
    return write_demo_data(tmp_path_factory.mktemp('demo'), 'seg', 4, 2, 64)


@pytest.fixture(scope='module')
def det_run(coco, tmp_path_factory):
    """One epoch of training (2 iterations), then --resume for a second epoch."""
    work_dir = tmp_path_factory.mktemp('det_run')
    options = det_options(coco)
    train(DET_CONFIG, work_dir, options + ['train_cfg.max_epochs=1'])
    resumed = train(DET_CONFIG, work_dir, options + ['train_cfg.max_epochs=2'], '--resume')
    return work_dir, resumed.stdout + resumed.stderr


# ------------------------------------------------------------------ train / resume / test


@pytest.mark.slow
def test_train_writes_checkpoint_and_resume_continues(det_run):
    work_dir, log = det_run
    first = load_mmengine_checkpoint(osp.join(work_dir, 'epoch_1.pth'))
    second = load_mmengine_checkpoint(osp.join(work_dir, 'epoch_2.pth'))
    assert (first['meta']['epoch'], first['meta']['iter']) == (1, 2)
    assert (second['meta']['epoch'], second['meta']['iter']) == (2, 4)
    assert 'resumed epoch: 1, iter: 2' in log
    assert 'Epoch(train) [2][1/2]' in log and 'Epoch(train) [1][' not in log
    assert any(k.startswith('backbone.layers.0.blocks.0.modulation.f')
               for k in second['state_dict'])


@pytest.mark.slow
def test_test_py_evaluates_detection_checkpoint(det_run, coco, tmp_path):
    work_dir, _ = det_run
    metrics = evaluate(DET_CONFIG, osp.join(work_dir, 'epoch_2.pth'), tmp_path,
                       det_options(coco), '--show-dir', 'vis')
    for key in ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP'):
        assert 0 <= metrics[key] <= 1  # -1 where the evaluation has no ground truth
    drawn = glob.glob(osp.join(tmp_path, '*', 'vis', '*.jpg'))
    assert len(drawn) == 2  # one picture per validation image


@pytest.mark.slow
def test_converted_mmdet2_checkpoint_evaluates_like_the_original(det_run, coco, tmp_path):
    """An mmdet 2.x-style release (whole detector under state_dict, DDP 'module.'
    prefixes, meta with CLASSES, optimizer state) converts to a checkpoint that
    tools/test.py evaluates exactly as the original."""
    work_dir, _ = det_run
    trained = load_mmengine_checkpoint(osp.join(work_dir, 'epoch_2.pth'))['state_dict']
    release = tmp_path / 'release.pth'
    torch.save({'meta': {'mmdet_version': '2.25.0', 'CLASSES': make_demo_data.SHAPES},
                'state_dict': {f'module.{k}': v for k, v in trained.items()},
                'optimizer': {'state': {}, 'param_groups': [{'lr': 1e-4}]}}, release)
    converted = tmp_path / 'converted.pth'
    run([PYTHON, 'tools/model_converters/convert_focalnet.py', str(release), str(converted)])
    state = torch.load(converted, weights_only=True)['state_dict']
    assert state.keys() == trained.keys()
    assert all(torch.equal(state[k], trained[k]) for k in trained)
    original = evaluate(DET_CONFIG, osp.join(work_dir, 'epoch_2.pth'), tmp_path / 'a',
                        det_options(coco))
    again = evaluate(DET_CONFIG, converted, tmp_path / 'b', det_options(coco))
    coco = {k: v for k, v in original.items() if k.startswith('coco/')}
    assert len(coco) >= 12 and coco == {k: again[k] for k in coco}


@pytest.mark.slow
def test_segmentation_train_and_miou(ade20k, tmp_path):
    options = seg_options(ade20k)
    train(SEG_CONFIG, tmp_path / 'train', options)
    checkpoint = load_mmengine_checkpoint(osp.join(tmp_path, 'train', 'iter_2.pth'))
    assert checkpoint['meta']['iter'] == 2
    metrics = evaluate(SEG_CONFIG, osp.join(tmp_path, 'train', 'iter_2.pth'),
                       tmp_path / 'test', options)
    assert 0 <= metrics['mIoU'] <= 100 and 0 <= metrics['aAcc'] <= 100


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return str(s.getsockname()[1])


@pytest.mark.slow
def test_dist_train_and_test_two_processes_gloo(ade20k, tmp_path):
    """torchrun with two CPU processes trains; evaluating with two processes (one
    validation image each) gives the metrics of a single process."""
    options = seg_options(ade20k)
    env = dict(PYTHON=PYTHON, OMP_NUM_THREADS='1')
    work_dir = tmp_path / 'dist'
    result = run(['bash', 'tools/dist_train.sh', SEG_CONFIG, '2', '--work-dir', str(work_dir),
                  '--cfg-options', *options], env=dict(env, PORT=_free_port()))
    log = result.stdout + result.stderr
    assert 'Distributed training: True' in log
    assert 'GPU number: 2' in log  # mmengine's name for the world size
    trained = load_mmengine_checkpoint(osp.join(work_dir, 'iter_2.pth'))
    assert trained['meta']['iter'] == 2

    # A bias towards 'background' makes it the prediction of every pixel: aAcc is then the
    # background's share of the labelled pixels of both images (each has shapes too).
    trained['state_dict']['decode_head.conv_seg.bias'][0] += 100
    checkpoint = str(tmp_path / 'background.pth')
    torch.save(trained, checkpoint)
    run(['bash', 'tools/dist_test.sh', SEG_CONFIG, checkpoint, '2',
         '--work-dir', str(tmp_path / 'dist_test'), '--cfg-options', *options],
        env=dict(env, PORT=_free_port()))
    distributed = read_metrics(tmp_path / 'dist_test')
    single = evaluate(SEG_CONFIG, checkpoint, tmp_path / 'single', options)
    keys = ('aAcc', 'mIoU', 'mAcc')
    assert 0 < single['aAcc'] < 100
    assert {k: distributed[k] for k in keys} == {k: single[k] for k in keys}


def test_end_distributed_takes_the_process_group_down():
    from train import end_distributed
    dist = torch.distributed
    dist.init_process_group('gloo', store=dist.HashStore(), rank=0, world_size=1)
    end_distributed()
    assert not dist.is_initialized()
    end_distributed()  # nothing to do without a process group


@pytest.mark.parametrize('script, args, tool_args', [
    ('slurm_train.sh', ['part', 'job', DET_CONFIG, '--work-dir', 'w d'],
     ['tools/train.py', DET_CONFIG, '--launcher', 'slurm', '--work-dir', 'w d']),
    ('slurm_test.sh', ['part', 'job', SEG_CONFIG, 'ckpt.pth', '--show-dir', 'vis'],
     ['tools/test.py', SEG_CONFIG, 'ckpt.pth', '--launcher', 'slurm', '--show-dir', 'vis']),
])
def test_slurm_scripts_build_the_srun_command(tmp_path, script, args, tool_args):
    """No cluster here: a stand-in ``srun`` on PATH records the arguments it is given."""
    fake = tmp_path / 'srun'
    fake.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "$SRUN_LOG"\n')
    fake.chmod(0o755)
    log = tmp_path / 'srun.log'
    env = dict(os.environ, PATH=f'{tmp_path}:{os.environ["PATH"]}', SRUN_LOG=str(log),
               GPUS='16', GPUS_PER_NODE='8', SRUN_ARGS='--quotatype=auto', PYTHON='py')
    subprocess.run(['bash', f'tools/{script}', *args], cwd=ROOT, env=env, check=True)
    argv = log.read_text().splitlines()
    assert argv == ['-p', 'part', '--job-name=job', '--gres=gpu:8', '--ntasks=16',
                    '--ntasks-per-node=8', '--cpus-per-task=5', '--kill-on-bad-exit=1',
                    '--quotatype=auto', 'py', '-u', *tool_args]


def test_cli_errors_are_clear(tmp_path):
    config = tmp_path / 'other_scope.py'
    config.write_text("default_scope = 'mmocr'\n")
    result = subprocess.run([PYTHON, 'tools/train.py', str(config)], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "default_scope of the config is 'mmocr'" in result.stderr
    result = subprocess.run([PYTHON, 'tools/test.py', DET_CONFIG, str(tmp_path / 'no.pth')],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode != 0 and 'checkpoint not found' in result.stderr


# ------------------------------------------------------------------ checkpoint loading


class _Reference:
    def __init__(self, owner, name):
        self.owner, self.name = owner, name

    def __reduce__(self):
        return getattr, (self.owner, self.name)


def test_allow_list_admits_history_buffer_methods_only(tmp_path):
    from mmengine.logging import HistoryBuffer
    from mmfocal.compat import allow_mmengine_checkpoints, load_weights
    allow_mmengine_checkpoints()
    good, bad = tmp_path / 'good.pth', tmp_path / 'bad.pth'
    torch.save({'m': _Reference(HistoryBuffer, 'mean')}, good)
    torch.save({'m': _Reference(HistoryBuffer, '__init__')}, bad)
    assert load_weights(good)['m'] is HistoryBuffer.mean
    with pytest.raises(pickle.UnpicklingError, match='refusing getattr'):
        load_weights(bad)


# ------------------------------------------------------------------ converter


def _small_focalnet():
    from mmfocal import FocalNet
    return FocalNet(embed_dims=16, depths=(1, 1, 1, 1), focal_windows=3)


def test_convert_imagenet_checkpoint(tmp_path):
    import convert_focalnet
    backbone = _small_focalnet()
    state = {k: v for k, v in backbone.state_dict().items() if not k.startswith('norm')}
    classifier = {'norm.weight': torch.ones(128), 'norm.bias': torch.zeros(128),
                  'head.weight': torch.zeros(10, 128), 'head.bias': torch.zeros(10)}
    src = tmp_path / 'imagenet.pth'
    torch.save({'model': {f'module.{k}': v for k, v in {**state, **classifier}.items()}}, src)
    report = convert_focalnet.convert(str(src), str(tmp_path / 'out.pth'))
    out = torch.load(tmp_path / 'out.pth', weights_only=True)['state_dict']
    assert out.keys() == state.keys()
    assert all(torch.equal(out[k], state[k]) for k in state)
    assert sum('classification only' in line for line in report.dropped) == 4


def test_convert_hugging_face_model_safetensors(tmp_path):
    """A bare transformers FocalNetModel state dict, as the hub serves it, converts to
    the authors' layout tensor for tensor."""
    import convert_focalnet
    from safetensors.torch import save_file
    from test_checkpoint import to_huggingface
    state = {k: v for k, v in _small_focalnet().state_dict().items() if not k.startswith('norm')}
    hf = {k[len('focalnet.'):]: v for k, v in to_huggingface(state).items()}
    assert any(k.startswith('encoder.stages.') for k in hf)
    save_file(hf, str(tmp_path / 'model.safetensors'))
    convert_focalnet.convert(str(tmp_path / 'model.safetensors'), str(tmp_path / 'out.pth'))
    out = torch.load(tmp_path / 'out.pth', weights_only=True)['state_dict']
    assert out.keys() == state.keys()
    assert all(torch.equal(out[k], state[k]) for k in state)


def test_convert_checks_against_config(tmp_path):
    """With --config a detector checkpoint that does not fit the model is refused with
    the list of differences."""
    import convert_focalnet
    config = tmp_path / 'small.py'
    config.write_text(textwrap.dedent(f"""
        _base_ = '{osp.join(ROOT, DET_CONFIG)}'
        model = dict(backbone=dict(embed_dims=16, depths=(1, 1, 1, 1)),
                     neck=dict(in_channels=[16, 32, 64, 128]))
    """))
    model = convert_focalnet.build_model(str(config))
    state = dict(model.state_dict())
    src = tmp_path / 'det.pth'
    torch.save({'state_dict': state}, src)
    assert convert_focalnet.main([str(src), str(tmp_path / 'ok.pth'), '--config', str(config)]) == 0
    state.pop('neck.fpn_convs.0.conv.weight')
    state['roi_head.bbox_head.fc_cls.weight'] = torch.zeros(3, 1024)
    torch.save({'state_dict': state}, src)
    with pytest.raises(Exception, match=r'2 differences'):
        convert_focalnet.convert(str(src), str(tmp_path / 'bad.pth'), str(config))


# ------------------------------------------------------------------ get_flops / checker


def test_sdpa_counted_like_explicit_attention():
    from get_flops import sdpa_flop
    from mmengine.analysis import FlopAnalyzer
    q, k, v = torch.rand(2, 3, 10, 8), torch.rand(2, 3, 14, 8), torch.rand(2, 3, 14, 5)

    class Fused(torch.nn.Module):
        def forward(self, q, k, v):
            return torch.nn.functional.scaled_dot_product_attention(q, k, v)

    class Explicit(torch.nn.Module):
        def forward(self, q, k, v):
            return (q @ k.transpose(-2, -1)).softmax(-1) @ v

    fused = FlopAnalyzer(Fused(), (q, k, v))
    fused.set_op_handle('aten::scaled_dot_product_attention', sdpa_flop)
    expected = 2 * 3 * 10 * 14 * (8 + 5)
    assert fused.total() == FlopAnalyzer(Explicit(), (q, k, v)).total() == expected


def _small_config(tmp_path):
    config = tmp_path / 'small_atss.py'
    config.write_text(textwrap.dedent(f"""
        _base_ = '{osp.join(ROOT, 'configs/detection/atss_focalnet_t_3x.py')}'
        model = dict(backbone=dict(embed_dims=16, depths=(1, 1, 1, 1)),
                     neck=dict(in_channels=[32, 64, 128]))
    """))
    return config


def test_get_flops_params_and_flops(tmp_path):
    from get_flops import build_model, complexity
    from mmengine.config import Config
    config = _small_config(tmp_path)
    result = run([PYTHON, 'tools/analysis/get_flops.py', str(config), '--shape', '64', '96'])
    model = build_model(Config.fromfile(str(config)))
    params = sum(p.numel() for p in model.parameters())
    assert f'params: {params / 1e6:.2f} M' in result.stdout
    assert 'input: 1x3x64x96' in result.stdout
    # FLOPs grow with the pixels (all convolutions and tokens scale with the area)
    _, small = complexity(Config.fromfile(str(config)), (64, 96))
    _, large = complexity(Config.fromfile(str(config)), (128, 192))
    assert 3.5 < large / small <= 4.0


def test_check_complexity_tolerance_and_notes(tmp_path, monkeypatch):
    """Exit status from the relative differences and the notes (the measurement itself
    is get_flops.complexity, tested above; here it returns fixed figures)."""
    import check_complexity
    config = _small_config(tmp_path)
    params, flops = 1_234_567, 8_765_432_100
    monkeypatch.setattr(check_complexity, 'complexity', lambda cfg, shape: (params, flops))

    def check(paper_params, paper_flops, note=None):
        meta = {'Paper Parameters (M)': paper_params, 'Paper FLOPs (G)': paper_flops}
        if note:
            meta['Complexity Note'] = note
        metafile = tmp_path / 'metafile.yml'
        metafile.write_text(yaml.safe_dump({'Models': [
            {'Name': 'small_atss', 'Config': str(config), 'Metadata': meta}]}))
        return check_complexity.main(['--metafile', str(metafile), '--shape', '64', '96'])

    assert check(params / 1e6 * 1.009, flops / 1e9 * 0.975) == 0
    assert check(params / 1e6 * 1.02, flops / 1e9) == 1
    assert check(params / 1e6, flops / 1e9 * 1.05) == 1
    assert check(params / 1e6, flops / 1e9 * 1.05, note='rounded') == 0
