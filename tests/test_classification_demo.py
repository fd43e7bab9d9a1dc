"""The Keras tutorial's CIFAR-10 FocalNet and the digits demo (``make demo-cls``) in mmpretrain.

The tutorial config trains on a CIFAR-10-layout dataset written here (the pickled batches
mmpretrain's ``CIFAR10`` reads) and keeps the tutorial's split and schedule; the digits
writer writes a split that mmpretrain's ``CustomDataset`` reads; the tutorial's pictures are
drawn for a classifier by the tool and the hook; a shortened digits demo runs end to end.
mmpretrain needs torchvision: these tests run where both import (the oldest stack).
"""
import glob
import json
import math
import os
import os.path as osp
import pickle
import runpy
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config

from _helpers import ROOT

try:  # mmpretrain's models import torchvision, which fails in several ways where absent
    import mmpretrain.models  # noqa: F401
except Exception as exc:  # noqa: BLE001
    pytest.skip(f'mmpretrain with torchvision is not importable: {exc}',
                allow_module_level=True)

from mmengine.registry import init_default_scope  # noqa: E402

import mmfocal  # noqa: E402,F401
from mmfocal import visualization  # noqa: E402
from mmfocal.engine import FocalMapsHook  # noqa: E402

sys.path.insert(0, osp.join(ROOT, 'tools', 'dataset_converters'))
sys.path.insert(0, osp.join(ROOT, 'tools', 'analysis'))
import make_digits_data  # noqa: E402
import visualize_focal  # noqa: E402

TUTORIAL = osp.join(ROOT, 'configs/classification/focalnet-tutorial_1xb1024_cifar10.py')
DIGITS = osp.join(ROOT, 'configs/classification/demo_focalnet_digits.py')
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
CIFAR_CLASSES = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse',
                 'ship', 'truck')


# --------------------------------------------------------------------------- the tutorial


def test_tutorial_schedule_is_the_tutorials():
    """40 iterations per epoch (40000 images at batch 1024) for 25 epochs: the lr rises
    linearly over the first 15 % (150 iterations) from ~0 to 1e-4, then follows a cosine to 0,
    as the tutorial's WarmUpCosine."""
    from mmengine.registry import PARAM_SCHEDULERS
    cfg = Config.fromfile(TUTORIAL)
    assert cfg.train_dataloader.batch_size == 1024 and cfg.train_cfg.max_epochs == 25
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))],
                                  lr=cfg.optim_wrapper.optimizer.lr,
                                  weight_decay=cfg.optim_wrapper.optimizer.weight_decay)
    schedulers = [PARAM_SCHEDULERS.build(s, default_args=dict(optimizer=optimizer,
                                                              epoch_length=40))
                  for s in cfg.param_scheduler]
    lrs = []
    for _ in range(40 * 25):
        lrs.append(optimizer.param_groups[0]['lr'])
        optimizer.step()
        for scheduler in schedulers:
            scheduler.step()
    lrs = np.array(lrs)
    assert lrs[0] < 1e-6
    np.testing.assert_allclose(lrs[149], 1e-4, rtol=1e-6)  # the last warm-up step
    np.testing.assert_allclose(lrs[75], 1e-4 * (1e-3 + (1 - 1e-3) * 75 / 149), rtol=1e-6)
    assert (np.diff(lrs[:150]) > 0).all() and (np.diff(lrs[150:]) <= 0).all()
    for step in (150, 400, 575, 900, 999):
        np.testing.assert_allclose(
            lrs[step], 0.5e-4 * (1 + math.cos(math.pi * (step - 150) / 850)), atol=1e-10)


def test_tutorial_model_has_three_stages():
    """48x48 inputs: 12x12, 6x6 and 3x3 tokens of 256, 512 and 1024 channels; a one-tuple
    through the final norm; ten logits."""
    cfg = Config.fromfile(TUTORIAL)
    init_default_scope('mmpretrain')
    from mmpretrain.registry import MODELS
    model = MODELS.build(cfg.model).eval()
    shapes = []
    for stage in model.backbone.layers:
        stage.blocks[-1].register_forward_hook(
            lambda m, args, out: shapes.append(tuple(out.shape[1:])))
    with torch.no_grad():
        feats = model.extract_feat(torch.rand(2, 3, 48, 48))
        logits = model(torch.rand(2, 3, 48, 48), mode='tensor')
    assert shapes[:3] == [(12, 12, 256), (6, 6, 512), (3, 3, 1024)]
    assert feats[0].shape == (2, 1024) and logits.shape == (2, 10)
    assert [len(stage.blocks) for stage in model.backbone.layers] == [2, 3, 2]
    assert model.backbone.layers[0].blocks[0].modulation.focal_level == 2
    assert model.backbone.layers[0].blocks[0].modulation.focal_layers[1][0].kernel_size == (5, 5)


def write_cifar10(root: str, per_batch: int, num_test: int, seed: int = 0) -> dict:
    """CIFAR-10's python layout under ``root``/cifar-10-batches-py with random images:
    data_batch_1..5 of ``per_batch`` images, test_batch, batches.meta. Returns the labels
    {'train': [...], 'test': [...]} in file order."""
    rng = np.random.default_rng(seed)
    folder = osp.join(root, 'cifar-10-batches-py')
    os.makedirs(folder)
    labels = dict(train=[], test=[])
    names = [f'data_batch_{k}' for k in range(1, 6)] + ['test_batch']
    for name in names:
        num = num_test if name == 'test_batch' else per_batch
        batch_labels = rng.integers(0, 10, num).tolist()
        labels['test' if name == 'test_batch' else 'train'] += batch_labels
        batch = dict(batch_label=name, labels=batch_labels,
                     data=rng.integers(0, 256, (num, 3 * 32 * 32), dtype=np.uint8),
                     filenames=[f'{name}_{i}.png' for i in range(num)])
        with open(osp.join(folder, name), 'wb') as f:
            pickle.dump(batch, f, protocol=2)
    with open(osp.join(folder, 'batches.meta'), 'wb') as f:
        pickle.dump(dict(label_names=list(CIFAR_CLASSES), num_cases_per_batch=per_batch,
                         num_vis=3 * 32 * 32), f, protocol=2)
    return labels


@pytest.fixture
def cifar10(tmp_path, monkeypatch):
    """50 training and 10 test images; the MD5 sums of the real files are not checked."""
    import mmpretrain.datasets.cifar as cifar
    monkeypatch.setattr(cifar, 'check_md5', lambda path, md5, **kwargs: True)
    root = str(tmp_path / 'cifar10')
    return root, write_cifar10(root, per_batch=10, num_test=10)


def test_tutorial_split_on_the_cifar10_layout(cifar10):
    """The first images of the training batches train, the last ones validate (the config's
    40000 / -10000, here 40 / -10 of 50), the test batch tests; arrays stay RGB."""
    root, labels = cifar10
    from mmpretrain.registry import DATASETS
    cfg = Config.fromfile(TUTORIAL)
    assert (cfg.train_dataloader.dataset.indices, cfg.val_dataloader.dataset.indices) == (
        40000, -10000)
    init_default_scope('mmpretrain')
    sets = {}
    for loader, indices in zip(LOADERS, (40, -10, None)):
        dataset = cfg[loader].dataset
        dataset.update(data_root=root, download=False)
        if indices is not None:
            dataset.indices = indices
        sets[loader] = DATASETS.build(dataset)
    assert list(sets['train_dataloader'].get_gt_labels()) == labels['train'][:40]
    assert list(sets['val_dataloader'].get_gt_labels()) == labels['train'][40:]
    assert list(sets['test_dataloader'].get_gt_labels()) == labels['test']
    with open(osp.join(root, 'cifar-10-batches-py', 'data_batch_5'), 'rb') as f:
        last = pickle.load(f, encoding='latin1')
    first_val = last['data'][0].reshape(3, 32, 32).transpose(1, 2, 0)
    np.testing.assert_array_equal(sets['val_dataloader'].get_data_info(0)['img'], first_val)
    # the hook draws it in BGR
    np.testing.assert_array_equal(
        FocalMapsHook.dataset_image(sets['val_dataloader'], 0), first_val[..., ::-1])
    inputs = sets['train_dataloader'][0]['inputs']
    assert inputs.shape == (3, 48, 48)


def test_tutorial_config_trains_on_the_cifar10_layout(cifar10, tmp_path, monkeypatch):
    """tools/train.py on the tutorial config at full width: two iterations, a validation,
    a checkpoint, finite losses, and the tutorial's picture of 5 validation images."""
    root, _ = cifar10
    work_dir = tmp_path / 'work'
    options = [f'{loader}.{key}' for loader in LOADERS for key in (
        f'dataset.data_root={root}', 'dataset.download=False', 'batch_size=20',
        'num_workers=0', 'persistent_workers=False')]
    options += ['train_dataloader.dataset.indices=40', 'val_dataloader.dataset.indices=-10',
                'train_cfg.max_epochs=1', 'default_hooks.logger.interval=1',
                'default_hooks.checkpoint.save_optimizer=False']
    monkeypatch.setattr(sys, 'argv', ['tools/train.py', TUTORIAL, '--work-dir', str(work_dir),
                                      '--cfg-options', *options])
    runpy.run_path(osp.join(ROOT, 'tools', 'train.py'), run_name='__main__')

    assert (work_dir / 'epoch_1.pth').is_file()
    with open(work_dir / 'last_checkpoint') as f:
        assert f.read().strip().endswith('epoch_1.pth')
    state = torch.load(work_dir / 'epoch_1.pth', map_location='cpu',
                       weights_only=False)['state_dict']
    assert state['head.fc.weight'].shape == (10, 1024)
    assert state['backbone.norm.weight'].shape == (1024, )
    (run, ) = [d for d in glob.glob(str(work_dir / '*')) if osp.isdir(d)]
    with open(osp.join(run, 'vis_data', osp.basename(run) + '.json')) as f:  # the log's
        records = [json.loads(line) for line in f]
    losses = [r['loss'] for r in records if 'loss' in r]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    assert any('accuracy/top1' in r for r in records)
    picture = osp.join(run, 'vis_data', 'vis_image', 'focalnet_maps_2.png')
    side = 32 * math.ceil(144 / 32)  # the config's display_size
    assert cv2.imread(picture).shape == (5 * (side + visualization.CAPTION), 5 * side, 3)


# ------------------------------------------------------------------------------- digits


@pytest.fixture(scope='module')
def digits(tmp_path_factory):
    pytest.importorskip('sklearn')
    out = tmp_path_factory.mktemp('digits') / 'digits'
    meta = make_digits_data.main(['--out', str(out)])
    return str(out), meta


def test_digits_split_and_layout(digits):
    """1,437 / 360 disjoint digits covering all 1,797, stratified, each PNG in the folder of
    its label, the scan upsampled; mmpretrain's CustomDataset reads the classes 0-9."""
    out, meta = digits
    scans, labels = make_digits_data.load_digits()
    assert (meta['num_train'], meta['num_test']) == (1437, 360)
    seen = {}
    for split in ('train', 'test'):
        for path in glob.glob(osp.join(out, split, '*', '*.png')):
            index = int(osp.splitext(osp.basename(path))[0])
            assert index not in seen
            seen[index] = split
            assert int(osp.basename(osp.dirname(path))) == labels[index]
    assert sorted(seen) == list(range(1797))
    test_counts = np.bincount([labels[i] for i, s in seen.items() if s == 'test'])
    assert test_counts.min() >= 35 and test_counts.max() <= 37
    index = min(i for i, s in seen.items() if s == 'test')
    image = cv2.imread(osp.join(out, 'test', str(labels[index]), f'{index:04d}.png'),
                       cv2.IMREAD_UNCHANGED)
    assert image.shape == (32, 32) and image.dtype == np.uint8
    back = cv2.resize(image.astype(np.float32), (8, 8), interpolation=cv2.INTER_AREA)
    assert np.corrcoef(back.ravel(), scans[index].ravel())[0, 1] > 0.9

    from mmpretrain.registry import DATASETS
    cfg = Config.fromfile(DIGITS)
    init_default_scope('mmpretrain')
    dataset = cfg.test_dataloader.dataset
    dataset.data_root = out
    test_set = DATASETS.build(dataset)
    assert len(test_set) == 360 and test_set.CLASSES == tuple('0123456789')
    for k in (0, 359):
        info = test_set.get_data_info(k)
        assert info['gt_label'] == int(osp.basename(osp.dirname(info['img_path'])))
    assert test_set[0]['inputs'].shape == (3, 48, 48)


def test_digits_writer_rejects_bad_arguments(capsys):
    for argv in (['--size', '4'], ['--test-fraction', '0.9']):
        with pytest.raises(SystemExit):
            make_digits_data.parse_args(argv)
    assert 'must be in' in capsys.readouterr().err


# ----------------------------------------------------------------------------- pictures


@pytest.fixture(scope='module')
def digits_classifier():
    torch.manual_seed(0)
    return visualize_focal.build_model(DIGITS, 'none', 'cpu')


def test_tutorial_pictures_of_a_classifier(digits_classifier, tmp_path):
    """Per image: G1, G2, the global gate and the modulator norm of the middle stage's last
    block, at the enlarged size; the gallery has one row per image."""
    model, scope = digits_classifier
    assert scope == 'mmpretrain'
    rng = np.random.default_rng(0)
    paths = []
    for name in ('a', 'b'):
        paths.append(str(tmp_path / f'{name}.png'))
        cv2.imwrite(paths[-1], rng.integers(0, 256, (32, 32), dtype=np.uint8))
    (tmp_path / 'out').mkdir()
    written = visualize_focal.draw(model, scope, paths, str(tmp_path / 'out'), [1], -1,
                                   style='tutorial', display_size=96)
    maps = ['gate_level1', 'gate_level2', 'gate_global', 'modulator_norm']
    assert [osp.basename(p) for p in written] == [
        f'{n}_{m}.png' for n in 'ab' for m in [f's1b1_{k}' for k in maps] + ['focalnet']] + [
        'focalnet_gallery.png']
    assert cv2.imread(written[0]).shape == (96, 96, 3)
    row = 96 + visualization.CAPTION
    assert cv2.imread(written[4]).shape == (row, 5 * 96, 3)
    assert cv2.imread(written[-1]).shape == (2 * row, 5 * 96, 3)


def test_modulator_norm_is_the_tutorials(digits_classifier):
    """The drawn map is the L2 norm over channels of the modulator that the middle stage's
    last block computes on the 6x6 tokens of a 48x48 input, resized to the image."""
    model, scope = digits_classifier
    image = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    block = model.backbone.layers[1].blocks[-1]
    seen = []
    handle = block.modulation.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    try:
        (where, maps), = visualization.capture_focalnet(
            model.backbone, lambda: visualize_focal.run_model(model, scope, image), (64, 64),
            [1], -1, 'tutorial')
    finally:
        handle.remove()
    assert where == 's1b1' and seen[0].shape[1:3] == (6, 6)
    with torch.no_grad():
        _, gates, modulator = block.modulation.modulate(seen[0])
    expected = visualization.to_image_grid(modulator[0].norm(dim=-1), (48, 48), (48, 48),
                                           (64, 64))
    np.testing.assert_allclose(maps['modulator_norm'], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        maps['gate_global'],
        visualization.to_image_grid(gates[0, -1], (48, 48), (48, 48), (64, 64)), atol=1e-6)


def test_styles_and_hook_arguments(capsys):
    with pytest.raises(SystemExit):
        visualize_focal.parse_args([DIGITS, 'none', '--out-dir', 'x', '--display-size', '0'])
    assert '--display-size must be a positive number' in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"style must be one of \['paper', 'tutorial'\]"):
        visualization.style_of('keras')
    with pytest.raises(ValueError, match='style must be one of'):
        FocalMapsHook(style='keras')
    with pytest.raises(ValueError, match='display_size must be None or a positive int'):
        FocalMapsHook(display_size=0)
    with pytest.raises(ValueError, match='non-empty list'):
        FocalMapsHook(image_index=[])
    image = np.zeros((32, 20, 3), np.uint8)
    assert visualization.display_image(image, 96).shape == (160, 100, 3)
    assert visualization.display_image(image, None) is image
    panel = visualization.gallery([np.zeros((5, 7, 3), np.uint8), np.zeros((4, 9, 3), np.uint8)])
    assert panel.shape == (9, 9, 3) and (panel[:5, 7:] == 255).all()


# --------------------------------------------------------------------------- end to end


def test_short_digits_demo_end_to_end(tmp_path):
    """tools/demo.py cls with 4 of the 12 epochs (its schedule shrunk to match): data,
    training, test and pictures; the classifier learns (the full demo's figure is in
    docs/en/classification.md)."""
    pytest.importorskip('sklearn')
    work_dir = tmp_path / 'work'
    subprocess.run(
        [sys.executable, 'tools/demo.py', 'cls', '--data-root', str(tmp_path / 'data'),
         '--work-dir', str(work_dir), '--num-pictures', '3', '--cfg-options',
         'train_cfg.max_epochs=4', 'train_cfg.val_interval=4', 'param_scheduler.0.end=0.6',
         'param_scheduler.1.begin=0.6', 'param_scheduler.1.end=4'], cwd=ROOT, check=True)
    with open(work_dir / 'summary.json') as f:
        summary = json.load(f)
    assert summary['figures']['top-1 (%)'] >= 80
    assert set(summary['seconds']) == {'data', 'train', 'test', 'pictures', 'total'}
    assert summary['predictions'] is None
    pictures = sorted(p.name for p in (work_dir / 'focal_maps').iterdir())
    assert 'focalnet_gallery.png' in pictures
    assert len([p for p in pictures if p.endswith('_s1b1_modulator_norm.png')]) == 3
    gallery = cv2.imread(str(work_dir / 'focal_maps' / 'focalnet_gallery.png'))
    assert gallery.shape == (3 * (96 + visualization.CAPTION), 5 * 96, 3)
    # the hook's picture: after the 4th epoch (180 iterations), not after the 1st to 3rd
    drawn = glob.glob(str(work_dir / '*' / 'vis_data' / 'vis_image' / '*.png'))
    assert [osp.basename(p) for p in drawn] == ['focalnet_maps_180.png']
