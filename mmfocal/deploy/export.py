"""Export a detector or segmentor to ONNX through mmdeploy, check the graph in ONNX Runtime
against PyTorch, and write mmdeploy's SDK files.

:func:`deploy` is what ``tools/deployment/deploy.py`` runs: ``end2end.onnx`` (mmdeploy's
``torch2onnx``), then, on the export image and any test images, the outputs of ONNX
Runtime against PyTorch's, and only when they agree ``deploy.json``, ``pipeline.json``
and ``detail.json`` (mmdeploy's ``export2SDK``). A graph that does not reproduce PyTorch
is removed and :class:`DeploymentError` says by how much and on what.

PyTorch's outputs are those the graph stands for: for detectors, the detector's forward
with mmdeploy's rewrites (its batched NMS, its RoI heads), run eagerly; for segmentors,
the segmentor's own ``encode_decode`` without any rewrite (logits at the input size), so
that a rewrite which changes the function (mmdeploy's adaptive pooling) is caught too.
"""
import copy
import os
import os.path as osp
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import onnx
import torch
from mmdeploy.apis import build_task_processor, torch2onnx
from mmdeploy.backend.onnxruntime import ORTWrapper
from mmdeploy.backend.sdk.export_info import export2SDK
from mmdeploy.core import RewriterContext, patch_model
from mmdeploy.utils import IR, get_input_shape
from mmengine.config import Config

from ..registry import toolbox_of
from . import pooling, roi_heads  # noqa: F401  (register their rewrites)
from .compare import Comparison, Difference, as_tensors, compare_outputs, difference
from .mmdeploy_compat import mmdeploy_on_current_torch

BACKEND = 'onnxruntime'
TASKS = {'mmdet': 'ObjectDetection', 'mmseg': 'Segmentation'}
OUTPUTS = {'mmdet': (['dets', 'labels'], ['dets', 'labels', 'masks']), 'mmseg': (['output'], )}
SDK_FILES = ('deploy.json', 'pipeline.json', 'detail.json')


class DeploymentError(RuntimeError):
    """An exported graph that does not compute what the PyTorch model computes."""


class ImageCheck(NamedTuple):
    """ONNX Runtime against PyTorch on one image."""
    image: str
    input_shape: Tuple[int, ...]  # (B, 3, H, W) as the graph received it
    comparison: Comparison
    # detectors: mmdeploy's rewrites against none on the features (see reference_outputs)
    features: Optional[Difference] = None

    @property
    def ok(self) -> bool:
        return self.comparison.ok and (self.features is None or self.features.within)


class Deployment(NamedTuple):
    """What :func:`deploy` wrote and found."""
    onnx_file: str
    custom_ops: List[str]  # operators outside the ONNX standard (none for mmfocal's models)
    checks: List[ImageCheck]


# ----------------------------------------------------------------------------- configs


def _fail(path: str, message: str):
    raise ValueError(f'deploy config {path}: {message}')


def check_deploy_config(cfg: Config, path: str) -> None:
    """What mmfocal's deployment runs: ONNX through mmdeploy for ONNX Runtime, an mmdet
    ``ObjectDetection`` or an mmseg ``Segmentation`` task with mmdeploy's output names."""
    backend = cfg.get('backend_config', {}).get('type')
    if backend != BACKEND:
        _fail(path, f'backend_config.type must be {BACKEND!r}, got {backend!r}')
    onnx_cfg = cfg.get('onnx_config')
    if not isinstance(onnx_cfg, dict) or onnx_cfg.get('type') != 'onnx':
        _fail(path, 'needs onnx_config = dict(type=\'onnx\', ...)')
    opset = onnx_cfg.get('opset_version')
    if not isinstance(opset, int) or opset < 11:
        _fail(path, f'onnx_config.opset_version must be an int >= 11, got {opset!r}')
    if not str(onnx_cfg.get('save_file', '')).endswith('.onnx'):
        _fail(path, 'onnx_config.save_file must name a .onnx file, got '
              f'{onnx_cfg.get("save_file")!r}')
    if len(onnx_cfg.get('input_names') or []) != 1:
        _fail(path, f'onnx_config.input_names must name one input, got '
              f'{onnx_cfg.get("input_names")!r}')
    shape = onnx_cfg.get('input_shape')
    if shape is not None and not (isinstance(shape, (list, tuple)) and len(shape) == 2 and
                                  all(isinstance(s, int) and s > 0 for s in shape)):
        _fail(path, f'onnx_config.input_shape must be None (the image\'s size) or '
              f'[width, height], got {shape!r}')
    codebase = cfg.get('codebase_config', {})
    if TASKS.get(codebase.get('type')) != codebase.get('task'):
        _fail(path, 'codebase_config must be one of ' + ', '.join(
            f'dict(type={t!r}, task={k!r})' for t, k in TASKS.items()) +
            f', got type={codebase.get("type")!r}, task={codebase.get("task")!r}')
    names = list(onnx_cfg.get('output_names') or [])
    if names not in [list(o) for o in OUTPUTS[codebase['type']]]:
        _fail(path, f'onnx_config.output_names must be one of {OUTPUTS[codebase["type"]]} '
              f'for {codebase["type"]}, got {names}')
    if codebase['type'] == 'mmseg' and codebase.get('with_argmax', True):
        _fail(path, 'codebase_config.with_argmax must be False: the graph returns logits '
              '(B, C, H, W), which are checked against PyTorch\'s')


def load_configs(deploy_cfg: str, model_cfg: str,
                 cfg_options: Optional[dict] = None) -> Tuple[Config, Config]:
    """The deploy and model configs, checked, ``cfg_options`` merged into the model's."""
    for kind, path in (('deploy config', deploy_cfg), ('model config', model_cfg)):
        if not osp.isfile(path):
            raise FileNotFoundError(f'{kind} not found: {path}')
    deploy, model = Config.fromfile(deploy_cfg), Config.fromfile(model_cfg)
    check_deploy_config(deploy, deploy_cfg)
    if cfg_options:
        model.merge_from_dict(cfg_options)
    toolbox = toolbox_of(model)
    if deploy.codebase_config.type != toolbox:
        raise ValueError(f'deploy config {deploy_cfg} is for {deploy.codebase_config.type}, '
                         f'the model config {model_cfg} for {toolbox}')
    check_roi_align(deploy, model, deploy_cfg)
    keep_all_proposals(model)
    return deploy, model


def sdk_model_config(model_cfg: Config) -> Config:
    """A copy of the model config for mmdeploy's SDK files (pipeline.json), which read
    ``test_cfg.rpn.min_bbox_size`` and ``test_cfg.rcnn.score_thr`` wherever ``rpn`` and
    ``rcnn`` are keys: Sparse R-CNN's test_cfg has ``rpn=None`` and an ``rcnn`` without a
    score threshold (it keeps the best ``max_per_img``), given 0."""
    cfg = copy.deepcopy(model_cfg)
    test_cfg = cfg.model.get('test_cfg') or {}
    if 'rpn' in test_cfg and test_cfg['rpn'] is None:
        test_cfg.pop('rpn')
    if isinstance(test_cfg.get('rcnn'), dict):
        test_cfg['rcnn'].setdefault('score_thr', 0.)
    return cfg


def keep_all_proposals(model_cfg: Config) -> None:
    """mmdet's RPN keeps proposals of any objectness; mmdeploy's applies the RPN test_cfg's
    ``score_thr``, else the post-processing's (0.05). An RPN test_cfg without one gets 0."""
    rpn = (model_cfg.model.get('test_cfg') or {}).get('rpn')
    if isinstance(rpn, dict) and 'score_thr' not in rpn:
        rpn['score_thr'] = 0.


def check_roi_align(deploy_cfg: Config, model_cfg: Config, path: str) -> None:
    """Opset 16 brought RoiAlign with aligned=True; below it mmdeploy shifts the boxes
    instead, which differs for RoIs under a pixel of the feature map."""
    opset = deploy_cfg.onnx_config.opset_version

    def aligned(node) -> bool:
        if isinstance(node, dict):
            if node.get('type') == 'RoIAlign' and node.get('aligned', True):
                return True
            return any(aligned(v) for v in node.values())
        return isinstance(node, (list, tuple)) and any(aligned(v) for v in node)

    if opset < 16 and aligned(model_cfg.model):
        _fail(path, f'opset_version {opset} has no RoiAlign with aligned=True, which the '
              'model\'s RoI heads use; use opset_version >= 16')


def score_thresholds(deploy_cfg: Config, model_cfg: Config) -> List[float]:
    """Every score threshold of the post-processing (mmdeploy's and the heads' test_cfg),
    where rounding may decide whether a detection is kept."""
    found = [deploy_cfg.codebase_config.get('post_processing', {}).get('score_threshold')]

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                found.append(value if key == 'score_thr' else None)
                walk(value)

    walk(model_cfg.model.get('test_cfg'))
    return [float(t) for t in found if isinstance(t, (int, float))]


# ----------------------------------------------------------------------------- checking


def reference_outputs(model: torch.nn.Module, data: dict, inputs: torch.Tensor,
                      deploy_cfg: Config, atol: float,
                      rtol: float) -> Tuple[Dict[str, torch.Tensor], Optional[Difference]]:
    """PyTorch's outputs for the graph's ``inputs`` (B, 3, H, W), named as the graph's,
    and for detectors the difference mmdeploy's rewrites make to the features
    (``extract_feat``): the detector reference runs with them, so a rewrite that changes
    what the backbone or neck computes would be in both and go unnoticed."""
    names = deploy_cfg.onnx_config.output_names
    with torch.no_grad():
        if deploy_cfg.codebase_config.type == 'mmseg':
            metas = [dict(img_shape=inputs.shape[2:])] * len(inputs)
            return {names[0]: model.encode_decode(inputs, metas)}, None
        plain = model.extract_feat(inputs)
        patched = patch_model(model, cfg=deploy_cfg, backend=BACKEND, ir=IR.ONNX)
        with RewriterContext(cfg=deploy_cfg, backend=BACKEND, ir=IR.ONNX,
                             opset=deploy_cfg.onnx_config.opset_version):
            rewritten = patched.extract_feat(inputs)
            outputs = patched(inputs, data['data_samples'], mode='predict')
    gaps = [difference('features', a, b, atol, rtol) for a, b in zip(rewritten, plain)]
    features = Difference('features', max(d.max_abs for d in gaps),
                          all(d.within for d in gaps))
    return dict(zip(names, outputs)), features


def check_image(task, model, backend: ORTWrapper, image: str, deploy_cfg: Config,
                thresholds: Sequence[float], atol: float, rtol: float) -> List[ImageCheck]:
    """ONNX Runtime against PyTorch on ``image``, resized as the export's input."""
    data, inputs = task.create_input(image, get_input_shape(deploy_cfg),
                                     data_preprocessor=model.data_preprocessor)
    input_name = deploy_cfg.onnx_config.input_names[0]
    with torch.no_grad():
        got = as_tensors(backend({input_name: inputs}))
    expected, features = reference_outputs(model, data, inputs, deploy_cfg, atol, rtol)
    comparisons = compare_outputs(got, as_tensors(expected), thresholds, atol, rtol)
    return [ImageCheck(image=image, input_shape=tuple(inputs.shape), comparison=c,
                       features=features) for c in comparisons]


def custom_ops(onnx_file: str) -> List[str]:
    """Operators of ``onnx_file`` outside the standard ONNX domain (``domain::op``)."""
    graph = onnx.load(onnx_file, load_external_data=False).graph
    return sorted({f'{n.domain}::{n.op_type}' for n in graph.node
                   if n.domain not in ('', 'ai.onnx')})


def mismatch_message(checks: Sequence[ImageCheck], deploy_cfg: Config, atol: float,
                     rtol: float) -> str:
    lines = [f'the exported graph does not reproduce PyTorch (within {atol:g} + {rtol:g} '
             'x |PyTorch|):']
    for check in checks:
        if not check.ok:
            lines.append(f'  {describe(check)}')
            lines += [f'    {p}' for p in check.comparison.problems[:10]]
    opset = deploy_cfg.onnx_config.opset_version
    if deploy_cfg.codebase_config.type == 'mmdet' and opset < 16:
        lines.append(f'  opset {opset} has no RoiAlign with aligned=True (opset 16): '
                     'two-stage detectors need opset_version >= 16')
    return '\n'.join(lines)


def describe(check: ImageCheck) -> str:
    """One line: the image, the input and the largest differences."""
    c = check.comparison
    counts = f'{c.detections[0]} detections (PyTorch {c.detections[1]}), ' \
        if c.detections else ''
    gaps = ', '.join(f'{d.name} {d.max_abs:.1e}' + ('' if d.within else ' (too large)')
                     for d in c.differences)
    shape = 'x'.join(str(s) for s in check.input_shape)
    line = f'{osp.basename(check.image)}, input {shape}: {counts}max |ONNX Runtime - ' \
        f'PyTorch|: {gaps}'
    if check.features is not None:
        line += f'; mmdeploy\'s rewrites change the features by {check.features.max_abs:.1e}' \
            + ('' if check.features.within else ' (too much)')
    return line


# ----------------------------------------------------------------------------- pipeline


def deploy(deploy_cfg: str, model_cfg: str, checkpoint: str, image: str, work_dir: str,
           test_images: Sequence[str] = (), device: str = 'cpu', atol: float = 1e-3,
           rtol: float = 1e-3, cfg_options: Optional[dict] = None) -> Deployment:
    """Export, check on ``image`` and ``test_images`` and write the SDK files.

    Returns the graph's path, its non-standard operators and the checks of every image;
    raises :class:`DeploymentError` (and leaves no
    graph behind) when ONNX Runtime's outputs differ from PyTorch's by more than
    ``atol + rtol * |PyTorch|`` anywhere.
    """
    deploy, model = load_configs(deploy_cfg, model_cfg, cfg_options)
    for kind, path in [('checkpoint', checkpoint), ('image', image)] + [
            ('test image', p) for p in test_images]:
        if not osp.isfile(path):
            raise FileNotFoundError(f'{kind} not found: {path}')
    os.makedirs(work_dir, exist_ok=True)
    onnx_file = osp.join(work_dir, deploy.onnx_config.save_file)
    for stale in [onnx_file] + [osp.join(work_dir, f) for f in SDK_FILES]:
        if osp.exists(stale):
            os.remove(stale)
    with mmdeploy_on_current_torch():
        torch2onnx(image, work_dir, deploy.onnx_config.save_file, deploy, model, checkpoint,
                   device)
    task = build_task_processor(model, deploy, device)
    torch_model = task.build_pytorch_model(checkpoint)
    backend = ORTWrapper(onnx_file, device, list(deploy.onnx_config.output_names))
    thresholds = score_thresholds(deploy, model)
    checks = [check for path in [image, *test_images]
              for check in check_image(task, torch_model, backend, path, deploy, thresholds,
                                       atol, rtol)]
    if not all(check.ok for check in checks):
        os.remove(onnx_file)
        raise DeploymentError(mismatch_message(checks, deploy, atol, rtol))
    export2SDK(deploy, sdk_model_config(model), work_dir, pth=checkpoint, device=device)
    return Deployment(onnx_file, custom_ops(onnx_file), checks)
