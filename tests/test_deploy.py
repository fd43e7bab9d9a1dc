"""Deployment to ONNX Runtime through mmdeploy (mmfocal.deploy, tools/deployment/): the
backbones' graphs at any input size, every kind of model the deploy configs serve within
1e-4 of PyTorch, the backend's COCO AP equal to PyTorch's, and clear errors.

Models are the real configs shrunk (one block per stage, narrow heads) with random weights;
images are 64 to 160 pixels (the trained systems: tests/test_deploy_trained.py).
Skipped where the ``deploy`` extra is not installed (the oldest supported stack).
"""
import glob
import json
import os
import os.path as osp
import re
import sys

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

for module in ('onnx', 'onnxruntime', 'mmdeploy'):
    pytest.importorskip(module, reason=f'{module} is not installed: the deploy extra '
                        '(docs/en/deployment.md) is only on the latest stack')

from mmengine.config import Config  # noqa: E402
from mmengine.registry import MODELS, init_default_scope  # noqa: E402

from mmfocal.deploy.compare import compare_outputs  # noqa: E402
from mmfocal.deploy.mmdeploy_compat import mmdeploy_on_current_torch  # noqa: E402
from mmfocal.deploy.export import load_configs  # noqa: E402
from mmfocal.deploy.pooling import adaptive_avg_pool2d  # noqa: E402
from mmfocal.deploy.roi_heads import (background_where_empty,  # noqa: E402
                                      mean_probability_logits)
from mmfocal.models.backbones import FocalNet, FocalTransformer  # noqa: E402

from _helpers import ROOT  # noqa: E402
DEPLOY = osp.join(ROOT, 'configs', 'deploy')
sys.path.insert(0, osp.join(ROOT, 'tools', 'deployment'))
import deploy as deploy_tool  # noqa: E402

TOLERANCE = 1e-4
#: box corners are pixel coordinates, up to about 2000 before clipping: float32 resolves them
#: to 1.2e-4 there, so the graph's and PyTorch's rounding may differ by that much on some
#: CPUs (a thousandth of a pixel is what the boxes are held to)
BOX_TOLERANCE = 1e-3


def write_image(path, height, width, seed=0):
    rng = np.random.default_rng(seed)
    cv2.imwrite(str(path), rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    return str(path)


# ----------------------------------------------------------------------------- backbones


def export_and_run(model, size, others, dynamic, tmp_path):
    """Max |ONNX Runtime - PyTorch| over the outputs at the export size and ``others``."""
    import onnxruntime as ort
    path = str(tmp_path / 'backbone.onnx')
    axes = {'input': {0: 'batch', 2: 'height', 3: 'width'}} if dynamic else None
    with mmdeploy_on_current_torch(), torch.no_grad():
        torch.onnx.export(model, (torch.randn(1, 3, *size), ), path, input_names=['input'],
                          opset_version=17, dynamic_axes=axes)
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    gaps = {}
    for h, w in [size, *others]:
        x = torch.randn(1, 3, h, w)
        with torch.no_grad():
            expected = model(x)
        got = session.run(None, {'input': x.numpy()})
        assert [g.shape for g in got] == [tuple(e.shape) for e in expected]
        gaps[(h, w)] = max(np.abs(g - e.numpy()).max() for g, e in zip(got, expected))
    return gaps


BACKBONES = {
    'FocalNet': lambda: FocalNet(embed_dims=16, depths=(1, 1, 1, 1), drop_path_rate=0.),
    'FocalTransformer': lambda: FocalTransformer(
        embed_dims=16, depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 2), drop_path_rate=0.),
}


@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_backbone_graph_serves_every_input_size(name, tmp_path):
    """One graph (dynamic axes), exported at 64x96: sizes that are not multiples of 32 or
    of the stride, maps of one window and of many, another batch size."""
    torch.manual_seed(0)
    model = BACKBONES[name]().eval()
    gaps = export_and_run(model, (64, 96), [(96, 64), (100, 70), (30, 30), (224, 224),
                                            (20, 300)], True, tmp_path)
    assert max(gaps.values()) < TOLERANCE, gaps


@pytest.mark.parametrize('size', [(64, 64), (96, 160), (224, 224)])
def test_focal_transformer_static_graph(size, tmp_path):
    """Static graphs at multiples of 32 (stage 3 of 64x64 and 224x224 is one window)."""
    torch.manual_seed(0)
    model = BACKBONES['FocalTransformer']().eval()
    gaps = export_and_run(model, size, [], False, tmp_path)
    assert max(gaps.values()) < TOLERANCE, gaps


# ----------------------------------------------------------------------------- models

DET_TEST_PIPELINE = """test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                          'scale_factor'))]
"""
SEG_TEST_PIPELINE = """test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(160, 96), keep_ratio=True),
    dict(type='PackSegInputs')]
"""
TINY_FPN = 'neck=dict(in_channels=[32, 64, 128], out_channels=32)'
TINY_FOCALNET = 'backbone=dict(embed_dims=16, depths=(1, 1, 1, 1), init_cfg=None, ' \
    'drop_path_rate=0.)'
TINY_FOCAL_TRANSFORMER = 'backbone=dict(embed_dims=16, depths=(1, 1, 1, 1), ' \
    'num_heads=(1, 1, 2, 2), init_cfg=None, drop_path_rate=0.)'
TINY_RETINA_HEAD = 'bbox_head=dict(in_channels=32, feat_channels=32, stacked_convs=1)'
# ATSS's GroupNorm has 32 groups, which need more than one value each on a 1x1 map
TINY_ATSS_HEAD = 'bbox_head=dict(in_channels=32, feat_channels=64, stacked_convs=1)'
TINY_MASK_RCNN = (
    'neck=dict(in_channels=[16, 32, 64, 128], out_channels=32), '
    'rpn_head=dict(in_channels=32, feat_channels=32), roi_head=dict('
    'bbox_roi_extractor=dict(out_channels=32), bbox_head=dict(in_channels=32, '
    'fc_out_channels=64), mask_roi_extractor=dict(out_channels=32), '
    'mask_head=dict(in_channels=32, conv_out_channels=32)), '
    'test_cfg=dict(rpn=dict(nms_pre=200, max_per_img=100))')
# name: (config, its shrinking, task of its deploy configs, image sizes (first: the export's))
MODELS_TO_DEPLOY = {
    'atss_focalnet': (
        'detection/atss_focalnet_t_3x.py',
        f'model = dict({TINY_FOCALNET}, {TINY_FPN}, {TINY_ATSS_HEAD})\n' + DET_TEST_PIPELINE,
        'detection', [(128, 128), (96, 160)]),
    'atss_focal_transformer': (
        'detection/atss_focal_transformer_t_3x.py',
        f'model = dict({TINY_FOCAL_TRANSFORMER}, {TINY_FPN}, {TINY_ATSS_HEAD})\n' +
        DET_TEST_PIPELINE, 'detection', [(128, 128), (96, 160)]),
    'mask_rcnn_focal_transformer': (
        'detection/mask_rcnn_focal_transformer_t_1x.py',
        f'model = dict({TINY_FOCAL_TRANSFORMER}, {TINY_MASK_RCNN})\n' + DET_TEST_PIPELINE,
        'instance-seg', [(128, 128), (96, 160)]),
    'retinanet_focal_transformer': (
        'detection/retinanet_focal_transformer_t_1x.py',
        f'model = dict({TINY_FOCAL_TRANSFORMER}, {TINY_FPN}, {TINY_RETINA_HEAD})\n' +
        DET_TEST_PIPELINE, 'detection', [(128, 128), (96, 160)]),
    'upernet_focalnet': (
        'segmentation/demo_upernet_focalnet.py', SEG_TEST_PIPELINE,
        'segmentation', [(96, 96), (64, 96), (100, 70)]),
    'upernet_focal_transformer': (
        'segmentation/demo_upernet_focal_transformer.py', SEG_TEST_PIPELINE,
        'segmentation', [(96, 96), (64, 96)]),
}


def random_checkpoint(config, path):
    """The config's model with random weights; classification biases drawn wide so that
    the detectors' scores spread over (0, 1) instead of sitting at the focal-loss prior."""
    cfg = Config.fromfile(config)
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    for name, param in model.named_parameters():
        if name.endswith(('retina_cls.bias', 'atss_cls.bias')):
            param.data.normal_(0, 2)
    torch.save({'state_dict': model.state_dict()}, path)
    return str(path)


@pytest.fixture(scope='module')
def shrunk(tmp_path_factory):
    """name -> (model config, random checkpoint, images) of MODELS_TO_DEPLOY."""
    root = tmp_path_factory.mktemp('shrunk')
    made = {}
    for name, (config, shrink, _, sizes) in MODELS_TO_DEPLOY.items():
        path = root / f'{name}.py'
        path.write_text(f"_base_ = ['{osp.join(ROOT, 'configs', config)}']\n{shrink}")
        images = [write_image(root / f'{name}_{i}.jpg', h, w, i)
                  for i, (h, w) in enumerate(sizes)]
        made[name] = (str(path), random_checkpoint(str(path), root / f'{name}.pth'), images)
    return made


def deploy_with_tool(deploy_cfg, config, checkpoint, images, work_dir, *extra):
    """tools/deployment/deploy.py's main: the Deployment it returns."""
    argv = [osp.join(DEPLOY, deploy_cfg), config, checkpoint, images[0], '--work-dir',
            str(work_dir), *extra]
    if images[1:]:
        argv += ['--test-img', *images[1:]]
    return deploy_tool.main(argv)


def assert_within(result, images, work_dir, detections=False, sizes=None):
    """Every image checked within TOLERANCE (boxes: BOX_TOLERANCE), at ``sizes`` input
    sizes (default: as many as images)."""
    assert [c.image for c in result.checks] == images
    assert len({c.input_shape for c in result.checks}) == (sizes or len(images))
    for check in result.checks:
        assert check.ok
        assert all(d.max_abs < (BOX_TOLERANCE if d.name == 'boxes' else TOLERANCE)
                   for d in check.comparison.differences), check
        if detections:
            assert check.comparison.detections[0] == check.comparison.detections[1] > 0
            assert check.features.max_abs == 0
    assert result.custom_ops == []
    for name in ('end2end.onnx', 'deploy.json', 'pipeline.json', 'detail.json'):
        assert osp.isfile(work_dir / name), name


@pytest.mark.parametrize('kind', ['dynamic', 'static'])
@pytest.mark.parametrize('name', [  # the quick tier (not slow) exports the segmentors
    n if n.startswith('upernet') else pytest.param(n, marks=pytest.mark.slow)
    for n in sorted(MODELS_TO_DEPLOY)])
def test_deploy_matches_pytorch(name, kind, shrunk, tmp_path):
    """The model's dynamic graph at all its image sizes, its static graph at the export
    image's."""
    config, checkpoint, images = shrunk[name]
    images = images if kind == 'dynamic' else images[:1]
    deploy_cfg = f'{MODELS_TO_DEPLOY[name][2]}_onnxruntime_{kind}.py'
    result = deploy_with_tool(deploy_cfg, config, checkpoint, images, tmp_path)
    assert_within(result, images, tmp_path, detections=name.startswith(('atss', 'retina')))


def metrics_of(work_dir):
    """The metrics a test runner wrote to WORK_DIR/TIMESTAMP/TIMESTAMP.json."""
    (path, ) = glob.glob(osp.join(str(work_dir), '*', '*.json'))
    with open(path) as f:
        return json.loads(f.read().strip().splitlines()[-1])


# ----------------------------------------------------------------------------- errors


@pytest.fixture
def det_inputs(tmp_path):
    """(model config, a checkpoint file, an image) for checks that fail before loading."""
    checkpoint = tmp_path / 'weights.pth'
    checkpoint.write_bytes(b'')
    return (osp.join(ROOT, 'configs', 'detection', 'demo_mask_rcnn_focalnet.py'),
            str(checkpoint), write_image(tmp_path / 'image.jpg', 64, 64))


def write_deploy_config(tmp_path, base, **changes):
    path = tmp_path / 'deploy_cfg.py'
    body = ''.join(f'{key} = {value!r}\n' for key, value in changes.items())
    path.write_text(f"_base_ = ['{osp.join(DEPLOY, base)}']\n{body}")
    return str(path)


@pytest.mark.parametrize('base, changes, match', [
    ('detection_onnxruntime_dynamic.py', dict(backend_config=dict(type='tensorrt')),
     "backend_config.type must be 'onnxruntime', got 'tensorrt'"),
    ('detection_onnxruntime_dynamic.py', dict(codebase_config=dict(task='Segmentation')),
     'codebase_config must be one of'),
    ('detection_onnxruntime_dynamic.py', dict(onnx_config=dict(output_names=['output'])),
     'output_names must be one of'),
    ('instance-seg_onnxruntime_dynamic.py', dict(onnx_config=dict(opset_version=11)),
     'opset_version 11 has no RoiAlign with aligned=True'),
    ('segmentation_onnxruntime_dynamic.py', {}, 'is for mmseg, the model config'),
    ('segmentation_onnxruntime_static.py', dict(onnx_config=dict(input_shape=[512])),
     r'input_shape must be None .* or \[width, height\]'),
])
def test_bad_deploy_config(base, changes, match, det_inputs, tmp_path):
    config, checkpoint, image = det_inputs
    cfg = write_deploy_config(tmp_path, base, **changes)
    with pytest.raises(SystemExit) as exc:
        deploy_tool.main([cfg, config, checkpoint, image, '--work-dir', str(tmp_path / 'out')])
    assert re.search(match, str(exc.value)), exc.value
    assert not osp.exists(tmp_path / 'out')


@pytest.mark.parametrize('missing', ['checkpoint', 'img'])
def test_missing_file(missing, det_inputs, tmp_path):
    config, checkpoint, image = det_inputs
    args = dict(checkpoint=checkpoint, img=image)
    args[missing] = str(tmp_path / 'nothing.pth')
    with pytest.raises(SystemExit) as exc:
        deploy_tool.main([osp.join(DEPLOY, 'instance-seg_onnxruntime_dynamic.py'), config,
                          args['checkpoint'], args['img'], '--work-dir', str(tmp_path / 'out')])
    assert str(exc.value) == f'deploy: {missing.replace("img", "image")} not found: ' \
        f'{tmp_path / "nothing.pth"}'
    assert not osp.exists(tmp_path / 'out' / 'end2end.onnx')


def test_graph_that_does_not_match_is_an_error_not_a_file(shrunk, tmp_path):
    """Tolerance 0: the rounding differences of any export are too large; the graph is
    removed and no SDK file written."""
    config, checkpoint, images = shrunk['upernet_focalnet']
    with pytest.raises(SystemExit) as exc:
        deploy_with_tool('segmentation_onnxruntime_dynamic.py', config, checkpoint, images,
                         tmp_path, '--atol', '0', '--rtol', '0')
    message = str(exc.value)
    assert message.startswith('deploy: the exported graph does not reproduce PyTorch')
    assert re.search(r'input 1x3x96x96: max \|ONNX Runtime - PyTorch\|: output \S+ \(too '
                     r'large\)', message), message
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- parts


@pytest.mark.parametrize('size', [(1, 1), (3, 5), (5, 3), (7, 12), (16, 16)])
@pytest.mark.parametrize('bins', [(1, 1), (2, 2), (3, 6), (6, 6)])
def test_adaptive_pooling_as_matrix_products(size, bins):
    """Any input size against any output size, larger ones too (windows overlap)."""
    x = torch.randn(2, 3, *size)
    torch.testing.assert_close(adaptive_avg_pool2d(x, bins), F.adaptive_avg_pool2d(x, bins))


def test_empty_rois_are_background():
    """Padding (0, 0, 0, 0) and boxes of zero width or height get background probability
    1; other rows keep their logits."""
    rois = torch.tensor([[0, 0, 0, 0, 0], [0, 2, 3, 9, 8], [0, 4, 5, 4, 9], [1, 1, 6, 7, 6],
                         [1, 0, 0, 1, 1]], dtype=torch.float)
    logits = torch.randn(5, 4)
    probs = background_where_empty(logits, rois).softmax(-1)
    empty = torch.tensor([True, False, True, True, False])
    torch.testing.assert_close(probs[empty], torch.tensor([[0., 0, 0, 1]]).expand(3, 4))
    torch.testing.assert_close(probs[~empty], logits[~empty].softmax(-1))


def test_rpn_keeps_proposals_of_any_objectness(tmp_path):
    """The RPN test_cfg gets score_thr 0 (mmdet's RPN has none), unless it has one."""
    deploy = osp.join(DEPLOY, 'instance-seg_onnxruntime_dynamic.py')
    config = osp.join(ROOT, 'configs', 'detection', 'demo_mask_rcnn_focalnet.py')
    _, model = load_configs(deploy, config)
    assert model.model.test_cfg.rpn.score_thr == 0
    assert model.model.test_cfg.rcnn.score_thr == 0.05
    _, model = load_configs(deploy, config, {'model.test_cfg.rpn.score_thr': 0.3})
    assert model.model.test_cfg.rpn.score_thr == 0.3


def test_cascade_masks_average_the_stages_probabilities():
    """The logits the graph's mask head gets are those of the stages' mean probability, also
    where a stage's sigmoid is 0 or 1 in float32."""
    stages = [torch.randn(4, 3, 7, 7) * 4 for _ in range(3)]
    stages[0][0] = 40.
    stages[1][1] = -40.
    for stage in stages:
        stage[2] = -120.
    mean = sum(stage.sigmoid() for stage in stages) / 3
    logits = mean_probability_logits(stages)
    torch.testing.assert_close(logits.sigmoid(), mean, rtol=1e-6, atol=1e-7)
    assert not logits.isnan().any() and (logits[2] == -float('inf')).all()


def rpn_outputs(zero_width: bool):
    """Random RPN outputs for a 64x64 image at strides 4 to 64 (3 anchors per place), the
    objectness logits distinct; with ``zero_width``, 32 of the best boxes of the first level
    are moved right of the image, where clipping leaves them no width."""
    generator = torch.Generator().manual_seed(0)
    sizes = [16, 8, 4, 2, 1]
    cls_scores = [torch.randn(1, 3, s, s, generator=generator) for s in sizes]
    bbox_preds = [torch.randn(1, 12, s, s, generator=generator) * 0.5 for s in sizes]
    if zero_width:
        bbox_preds[0][0, 0, :2] = 100.  # dx of the first anchor, two rows
        cls_scores[0][0, 0, :2] = 5 + torch.rand(2, 16, generator=generator)
    return cls_scores, bbox_preds


@pytest.mark.parametrize('zero_width', [False, True])
@pytest.mark.parametrize('nms_pre', [1000, 40, -1])
def test_graph_rpn_gives_mmdets_proposals(nms_pre, zero_width):
    """The exported RPN (mmfocal's rewrite, eagerly) keeps mmdet's proposals: of each level its
    nms_pre best (where a level has fewer: all), boxes of zero width dropped, NMS within each
    level, the best max_per_img; mmdeploy's RPN (one NMS over all levels) keeps others."""
    from mmdeploy.core import RewriterContext
    from mmdeploy.utils import IR
    from mmengine.config import ConfigDict
    init_default_scope('mmdet')
    head = MODELS.build(dict(
        type='RPNHead', in_channels=8, feat_channels=8,
        anchor_generator=dict(type='AnchorGenerator', scales=[8], ratios=[0.5, 1.0, 2.0],
                              strides=[4, 8, 16, 32, 64]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.] * 4,
                        target_stds=[1.] * 4)))
    head.test_cfg = ConfigDict(nms_pre=nms_pre, max_per_img=100, min_bbox_size=0, score_thr=0.,
                               nms=dict(type='nms', iou_threshold=0.7))
    cls_scores, bbox_preds = rpn_outputs(zero_width)
    metas = [dict(img_shape=(64, 64))]
    mmdet = head.predict_by_feat(cls_scores, bbox_preds, batch_img_metas=metas)[0]
    expected = torch.cat([mmdet.bboxes, mmdet.scores[:, None]], 1)
    deploy_cfg = Config.fromfile(osp.join(DEPLOY, 'instance-seg_onnxruntime_dynamic.py'))

    def proposals(backend):  # (N, 5) without the padding, by score
        with RewriterContext(cfg=deploy_cfg, backend=backend, ir=IR.ONNX, opset=17):
            dets, _ = head.predict_by_feat(cls_scores, bbox_preds, batch_img_metas=metas)
        dets = dets[0][dets[0, :, 4] > 0]
        return dets[dets[:, 4].argsort(descending=True)]

    expected = expected[expected[:, 4].argsort(descending=True)]
    torch.testing.assert_close(proposals('onnxruntime'), expected)
    theirs = proposals('default')
    assert theirs.shape != expected.shape or not torch.allclose(theirs, expected)


def detections(boxes, scores, labels):
    dets = torch.cat([torch.tensor(boxes, dtype=torch.float), torch.tensor(scores)[:, None]],
                     1)
    return dict(dets=dets[None], labels=torch.tensor(labels)[None])


def test_detections_are_matched_whatever_their_order():
    ref = detections([[0, 0, 10, 10], [5, 5, 20, 20], [1, 1, 9, 9]], [0.9, 0.8, 0.8], [1, 2, 2])
    out = detections([[1, 1, 9, 9], [0, 0, 10, 10.00001], [5, 5, 20, 20]], [0.8, 0.9, 0.8],
                     [2, 1, 2])
    (comparison, ) = compare_outputs(out, ref, atol=1e-4, rtol=0)
    assert comparison.ok and comparison.detections == (3, 3)
    assert comparison.max_abs('boxes') == pytest.approx(1e-5, abs=1e-6)


def test_a_detection_without_partner_is_tolerated_only_at_a_cut_off():
    ref = detections([[0, 0, 10, 10], [5, 5, 20, 20]], [0.9, 0.05], [1, 1])
    out = detections([[0, 0, 10, 10]], [0.9], [1])
    (at_threshold, ) = compare_outputs(out, ref, score_thresholds=[0.05], atol=1e-4, rtol=0)
    assert at_threshold.ok
    (elsewhere, ) = compare_outputs(out, ref, score_thresholds=[0.3], atol=1e-4, rtol=0)
    assert not elsewhere.ok
    assert elsewhere.problems == ['PyTorch detection 1 (label 1, score 0.0500) has no partner']
    relabelled = detections([[0, 0, 10, 10], [5, 5, 20, 20]], [0.9, 0.05], [3, 1])
    (other_label, ) = compare_outputs(relabelled, ref, score_thresholds=[0.3], atol=1e-4,
                                      rtol=0)
    assert len(other_label.problems) == 2


def test_workarounds_are_undone():
    import torch.onnx.symbolic_opset9 as opset9
    export, had_cast = torch.onnx.export, hasattr(opset9, '_cast_Long')
    with mmdeploy_on_current_torch():
        assert hasattr(opset9, '_cast_Long')
    assert torch.onnx.export is export and hasattr(opset9, '_cast_Long') == had_cast
