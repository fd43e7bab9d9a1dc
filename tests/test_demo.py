"""The demo: synthetic data in the COCO / ADE20K layouts, the pictures, and a shortened run."""
import datetime
import filecmp
import glob
import json
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from mmfocal import visualization

from _helpers import ROOT
sys.path.insert(0, osp.join(ROOT, 'tools', 'dataset_converters'))
sys.path.insert(0, osp.join(ROOT, 'tools', 'analysis'))
import make_demo_data  # noqa: E402
import visualize_focal  # noqa: E402

DET_CONFIG = osp.join(ROOT, 'configs/detection/demo_mask_rcnn_focalnet.py')
SEG_CONFIG = osp.join(ROOT, 'configs/segmentation/demo_upernet_focal_transformer.py')
SEG_FOCALNET_CONFIG = osp.join(ROOT, 'configs/segmentation/demo_upernet_focalnet.py')


@pytest.fixture(scope='module')
def demo_data(tmp_path_factory):
    out = tmp_path_factory.mktemp('demo')
    make_demo_data.main(['--out', str(out), '--num-train', '12', '--num-val', '3',
                         '--size', '96'])
    return out


def test_generator_is_deterministic(demo_data, tmp_path):
    make_demo_data.main(['--out', str(tmp_path), '--num-train', '12', '--num-val', '3',
                         '--size', '96'])
    for rel in ('coco/annotations/instances_train2017.json', 'coco/train2017/000000000007.jpg',
                'ade/ADEChallengeData2016/annotations/training/ADE_train_00000005.png'):
        assert filecmp.cmp(demo_data / rel, tmp_path / rel, shallow=False), rel


@pytest.mark.parametrize('argv', [['--num-train', '0'], ['--num-val', '-1'], ['--size', '16']])
def test_generator_rejects_bad_arguments(argv, capsys):
    with pytest.raises(SystemExit):
        make_demo_data.parse_args(argv)
    assert argv[0] in capsys.readouterr().err


def test_coco_layout_loads_with_mmdet(demo_data):
    from mmdet.datasets import CocoDataset
    from mmdet.datasets.transforms import LoadAnnotations
    root = demo_data / 'coco'
    with open(root / 'annotations/instances_train2017.json') as f:
        coco = json.load(f)
    dataset = CocoDataset(
        data_root=str(root), ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'), metainfo=dict(classes=make_demo_data.SHAPES),
        pipeline=[], test_mode=True)
    assert len(dataset) == 12
    instances = [inst for i in range(len(dataset)) for inst in dataset[i]['instances']]
    assert len(instances) == len(coco['annotations']) >= 12
    kinds = {type(a['segmentation']).__name__ for a in coco['annotations']}
    assert kinds == {'list', 'dict'}  # polygons and RLE
    loader = LoadAnnotations(with_bbox=True, with_mask=True)
    for i in range(len(dataset)):
        info = dataset[i]
        results = loader(dict(info, ori_shape=(info['height'], info['width'])))
        masks = results['gt_masks'].to_ndarray()
        assert masks.shape == (len(info['instances']), 96, 96)
        areas = [a['area'] for a in coco['annotations'] if a['image_id'] == info['img_id']]
        np.testing.assert_array_equal(masks.sum((1, 2)), areas)
        for mask, box in zip(masks, results['gt_bboxes'].numpy()):
            ys, xs = np.nonzero(mask)
            np.testing.assert_allclose(box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        assert cv2.imread(info['img_path']).shape == (96, 96, 3)


@pytest.mark.parametrize('demo_classes', [False, True])
def test_ade20k_layout_loads_with_mmseg(demo_data, demo_classes):
    """With ADE20KDataset (150 classes), and as the demo configs load it: the base dataset
    with ADE20K's conventions and the demo's class names."""
    from mmengine.config import Config
    from mmseg.datasets import ADE20KDataset
    from mmseg.datasets.transforms import LoadAnnotations
    from mmseg.registry import DATASETS
    kwargs = dict(
        data_root=str(demo_data / 'ade/ADEChallengeData2016'),
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        pipeline=[])
    if demo_classes:
        cfg = Config.fromfile(SEG_CONFIG).val_dataloader.dataset
        cfg.update(kwargs)
        dataset = DATASETS.build(cfg)
        assert dataset.metainfo['classes'] == make_demo_data.SEG_CLASSES
    else:
        dataset = ADE20KDataset(**kwargs)
    assert len(dataset) == 3
    seen = set()
    for i in range(len(dataset)):
        info = dataset[i]
        labels = LoadAnnotations()(dict(info))['gt_seg_map']
        assert labels.shape == cv2.imread(info['img_path']).shape[:2] == (96, 96)
        seen |= set(np.unique(labels).tolist())
    # 0 (the outline band) becomes 255; background and shapes become 0..4.
    assert 255 in seen and 0 in seen and seen <= {0, 1, 2, 3, 4, 255}


def test_label_map_matches_instances():
    img, objects, labels = make_demo_data.draw_scene(np.random.default_rng(3), 80, 120)
    assert img.shape == (80, 120, 3) and labels.shape == (80, 120) and objects
    covered = np.zeros(labels.shape, bool)
    for obj in objects:
        mask = obj['mask']
        assert not (covered & mask).any()  # shapes do not overlap
        covered |= mask
        inner = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        cls = make_demo_data.SEG_CLASSES.index(obj['shape']) + 1
        assert (labels[inner] == cls).all() and (labels[mask & ~inner] == 0).all()
    assert (labels[~covered] == 1).all()


# ----------------------------------------------------------------------------- pictures


@pytest.fixture(scope='module')
def focalnet_detector():
    torch.manual_seed(0)
    return visualize_focal.build_model(DET_CONFIG, 'none', 'cpu')


def test_modulate_gives_the_drawn_maps(focalnet_detector):
    """The gates drawn are the last L + 1 outputs of ``f``, and the modulator drawn is the one
    the module's output is made of."""
    model, _ = focalnet_detector
    modulation = model.backbone.layers[1].blocks[0].modulation
    dims = modulation.proj.in_features
    x = torch.randn(2, 7, 9, dims)
    with torch.no_grad():
        q, gates, modulator = modulation.modulate(x)
        projected = torch.nn.functional.linear(x, modulation.f.weight, modulation.f.bias)
        expected = modulation(x)
    assert gates.shape == (2, modulation.focal_level + 1, 7, 9)
    assert modulator.shape == q.shape == x.shape
    torch.testing.assert_close(gates, projected[..., 2 * dims:].permute(0, 3, 1, 2))
    torch.testing.assert_close(q, projected[..., :dims])
    torch.testing.assert_close(modulation.proj(q * modulator), expected)


def test_roi_features_of_the_backbone_outputs(focalnet_detector):
    """mmcv's RoIAlign indexes its input as contiguous NCHW memory: the features the demo
    detector's RoI heads sample must give what contiguous copies of them give, or the
    box and mask heads train on scrambled features (and the demo learns nothing)."""
    model, _ = focalnet_detector
    with torch.no_grad():
        feats = model.neck(model.backbone(torch.randn(1, 3, 64, 96)))[:4]
        rois = torch.tensor([[0., 4., 6., 40., 30.], [0., 10., 2., 60., 50.]])
        extractor = model.roi_head.bbox_roi_extractor
        torch.testing.assert_close(extractor(feats, rois),
                                   extractor(tuple(f.contiguous() for f in feats), rois))


@pytest.mark.parametrize('size, stages', [((100, 140), [-1]), ((160, 160), [1, 3])])
def test_focalnet_pictures_have_the_image_size(focalnet_detector, tmp_path, size, stages):
    model, scope = focalnet_detector
    image = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    path = str(tmp_path / 'img.png')
    cv2.imwrite(path, image)
    written = visualize_focal.draw(model, scope, [path], str(tmp_path), stages, -1)
    levels = model.backbone.layers[-1].blocks[-1].modulation.focal_level
    names = []
    for stage in stages:
        where = f'img_s{stage % 4}b{len(model.backbone.layers[stage].blocks) - 1}'
        names += [f'{where}_gate_level{k + 1}.png' for k in range(levels)] + [
            f'{where}_gate_global.png', f'{where}_modulator.png']
    assert [osp.basename(p) for p in written] == names + ['img_focalnet.png']
    for p in written[:-1]:
        assert cv2.imread(p).shape == (*size, 3)
    panel = cv2.imread(written[-1])
    assert panel.shape == (len(stages) * (size[0] + visualization.CAPTION),
                           size[1] * (levels + 3), 3)


def test_focalnet_maps_follow_the_image(focalnet_detector):
    """A gate map of the padded input is cropped to the resized image, then resized."""
    grid = torch.arange(12.).view(3, 4)  # tokens of a 96x128 input at stride 32
    out = visualization.to_image_grid(grid, (96, 128), (64, 128), (32, 64))
    assert out.shape == (32, 64)
    assert out[0, 0] < out[-1, -1] and out[-1, -1] < grid[2, 3]  # last row is cut off


def test_focalnet_bad_block(focalnet_detector, tmp_path):
    model, scope = focalnet_detector
    with pytest.raises(ValueError, match='--block must be in -1..0'):
        visualization.capture_focalnet(model.backbone, None, (64, 64), [3], 1)


def test_focalnet_segmentor_pictures(tmp_path):
    image = str(tmp_path / 'img.jpg')
    cv2.imwrite(image, np.full((72, 90, 3), 128, np.uint8))
    written = visualize_focal.main([SEG_FOCALNET_CONFIG, 'none', image, '--out-dir',
                                    str(tmp_path / 'out'), '--stage', '1'])
    assert osp.basename(written[0]) == 'img_s1b0_gate_level1.png'
    assert cv2.imread(written[0]).shape == (72, 90, 3)


def test_focal_transformer_tables(tmp_path):
    written = visualize_focal.main([SEG_CONFIG, 'none', '--out-dir', str(tmp_path)])
    model, _ = visualize_focal.build_model(SEG_CONFIG, 'none', 'cpu')
    tables = visualization.bias_tables(model.backbone)
    heads, windows = (1, 2, 4, 8), (15, 13, 9, 7)
    tile = visualization.TILE + 8
    for stage in range(4):
        chosen = tables[(stage, max(b for s, b in tables if s == stage))]
        assert chosen['window'].shape == (heads[stage], 13, 13)
        side = 7 + windows[stage] - 1
        assert chosen['level1'].shape == (heads[stage], side, side)
        attn = model.backbone.layers[stage].blocks[-1].attn
        param = attn.relative_position_bias_table_to_windows[0].detach().numpy()
        np.testing.assert_array_equal(chosen['level1'][-1, 2], param[-1, 2 * side:3 * side])
        local = attn.relative_position_bias_table.detach().numpy()
        np.testing.assert_array_equal(chosen['window'][0, 1], local[13:26, 0])
        assert cv2.imread(written[stage]).shape == (
            heads[stage] * (tile + visualization.CAPTION), 2 * tile, 3)
    assert cv2.imread(written[-1]).shape == (4 * (tile + visualization.CAPTION), 8 * tile, 3)


def test_focal_transformer_stage_choice_and_bad_input(tmp_path):
    written = visualize_focal.main([SEG_CONFIG, 'none', '--out-dir', str(tmp_path),
                                    '--stage', '-1', '1'])
    assert [osp.basename(p) for p in written] == [
        'focal_transformer_stage3.png', 'focal_transformer_stage1.png',
        'focal_transformer_heads.png']
    with pytest.raises(ValueError, match='--stage must be in -4..3'):
        visualize_focal.main([SEG_CONFIG, 'none', '--out-dir', str(tmp_path), '--stage', '4'])
    with pytest.raises(ValueError, match='give no image'):
        visualize_focal.main([SEG_CONFIG, 'none', written[0], '--out-dir', str(tmp_path)])


def test_visualize_needs_an_image_for_focalnet(tmp_path):
    with pytest.raises(ValueError, match='at least one image'):
        visualize_focal.main([DET_CONFIG, 'none', '--out-dir', str(tmp_path)])
    with pytest.raises(FileNotFoundError, match='checkpoint not found'):
        visualize_focal.main([DET_CONFIG, str(tmp_path / 'x.pth'), '--out-dir', str(tmp_path)])


# ----------------------------------------------------------------------------- end to end


@pytest.mark.slow
@pytest.mark.parametrize('task, options', [
    ('det', ['train_cfg.max_epochs=1', 'train_dataloader.batch_size=4']),
    ('seg', ['train_cfg.max_iters=2', 'train_dataloader.batch_size=4']),
])
def test_short_demo_end_to_end(task, options, tmp_path):
    """data -> tools/train.py -> tools/test.py --show-dir -> visualize_focal, on tiny data."""
    work_dir = tmp_path / 'work'
    subprocess.run(
        [sys.executable, 'tools/demo.py', task, '--data-root', str(tmp_path / 'data'),
         '--work-dir', str(work_dir), '--num-train', '8', '--num-val', '3',
         '--cfg-options', *options], cwd=ROOT, check=True)
    with open(work_dir / 'summary.json') as f:
        summary = json.load(f)
    assert all(0 <= v <= (1 if task == 'det' else 100) for v in summary['figures'].values())
    drawn = glob.glob(osp.join(summary['predictions'], '**', '*.*g'), recursive=True)
    assert len(drawn) == 3  # every validation image
    assert summary['predictions'].startswith(str(work_dir))
    pictures = sorted(p.name for p in (work_dir / 'focal_maps').iterdir())
    if task == 'det':
        assert '000000000001_focalnet.png' in pictures
    else:
        assert 'focal_transformer_heads.png' in pictures
    assert set(summary['seconds']) == {'data', 'train', 'test', 'pictures', 'total'}
    ran = datetime.date.fromisoformat(summary['date'])  # the run's date, UTC
    assert abs(ran - datetime.datetime.now(datetime.timezone.utc).date()).days <= 1
    assert summary['cores'] >= 1 and summary['cpu'] and summary['torch'] == torch.__version__
