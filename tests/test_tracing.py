"""Tracing sees the whole model. Under ``torch.jit.trace`` (mmengine's FLOP counter, the
TorchScript ONNX exporter), with or without gradients enabled, in training or inference
mode, mmfocal's backbones record their plain forward: no autograd Function (a
``prim::PythonOp`` the tracer cannot look into). So mmdet's and mmseg's own get_flops.py,
which trace with gradients enabled, count what tools/analysis/get_flops.py counts under
``torch.no_grad()``, for every config of the model zoo."""
import contextlib
import functools
import os.path as osp
import sys
from unittest import mock

import pytest
import torch
import yaml
from mmengine.analysis import FlopAnalyzer, get_model_complexity_info

from mmfocal.models.backbones import FocalNet, FocalTransformer
from test_configs import _model_key, fresh, is_classification, shrink

from _helpers import ROOT
sys.path.insert(0, osp.join(ROOT, 'tools', 'analysis'))
from get_flops import count_flops  # noqa: E402

with open(osp.join(ROOT, 'metafile.yml')) as f:
    ZOO = [m['Config'] for m in yaml.safe_load(f)['Models'] if not is_classification(m)]

BACKBONES = {
    'FocalNet': lambda: FocalNet(embed_dims=16, depths=(1, 1, 2, 1), drop_path_rate=0.),
    'FocalTransformer': lambda: FocalTransformer(
        embed_dims=16, depths=(1, 1, 2, 1), num_heads=(1, 1, 2, 2), drop_path_rate=0.),
}


@pytest.mark.parametrize('grad', [True, False], ids=['grad', 'no_grad'])
@pytest.mark.parametrize('training', [True, False], ids=['train', 'eval'])
@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_trace_records_no_autograd_function(name, training, grad):
    """The cases where eager mode runs mmfocal's autograd Functions (gradients on) too."""
    torch.manual_seed(0)
    model = BACKBONES[name]().train(training)
    x = torch.randn(2, 3, 64, 96)
    with torch.set_grad_enabled(grad):
        traced = torch.jit.trace(model, (x, ), check_trace=False)
    kinds = {node.kind() for node in traced.inlined_graph.nodes()}
    assert 'prim::PythonOp' not in kinds
    with torch.no_grad():
        for got, expected in zip(traced(x), model(x)):
            torch.testing.assert_close(got, expected)


@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_toolbox_flop_count_with_gradients_equals_no_grad(name):
    """mmengine's get_model_complexity_info, as mmdet's and mmseg's get_flops.py call it
    (gradients on, training-mode modules aside), against FlopAnalyzer under no_grad."""
    torch.manual_seed(0)
    model = BACKBONES[name]().eval()
    x = torch.randn(1, 3, 64, 96)
    toolbox = get_model_complexity_info(model, inputs=(x, ), show_table=False,
                                        show_arch=False)['flops']
    with torch.no_grad():
        ours = FlopAnalyzer(model, (x, )).unsupported_ops_warnings(False).total()
    assert toolbox == ours > 0


def small(config: str):
    """The config shrunk as in test_configs (one block per stage), DyHead to one block
    and DINO to 20 queries, so that a 32x32 image is traced in seconds."""
    cfg = shrink(fresh(config))
    necks = cfg.model.get('neck')
    for neck in necks if isinstance(necks, list) else []:
        if neck.get('type') == 'DyHead':
            neck.num_blocks = 1
    if cfg.model.type == 'DINO':
        cfg.model.num_queries = 20
    return cfg


@functools.lru_cache(maxsize=None)
def model_key(config: str) -> str:
    return _model_key(small(config))


def first_with_same_model(config: str) -> str:
    return next(c for c in ZOO if model_key(c) == model_key(config))


def build_constant(cfg) -> torch.nn.Module:
    """The model in eval mode, every initialiser a constant fill and no ``init_weights``
    (random draws and mmengine's record of them are the slow part of building on a CPU;
    FLOPs do not depend on the values)."""
    from mmengine.model import weight_init
    from mmengine.model.utils import revert_sync_batchnorm
    from mmengine.registry import MODELS, init_default_scope
    fill = mock.Mock(side_effect=lambda t, *args, **kwargs: t.data.fill_(0.01))
    patches = [(torch.nn.init, name) for name in (
        'kaiming_uniform_', 'kaiming_normal_', 'uniform_', 'normal_', 'trunc_normal_',
        'xavier_uniform_', 'xavier_normal_')] + [(weight_init, '_no_grad_trunc_normal_')]
    init_default_scope(cfg.default_scope)
    with contextlib.ExitStack() as stack:
        for owner, name in patches:
            stack.enter_context(mock.patch.object(owner, name, fill))
        model = MODELS.build(cfg.model)
    return revert_sync_batchnorm(model).eval()


@pytest.mark.slow
@pytest.mark.parametrize('config', ZOO)
def test_flops_with_gradients_equal_flops_under_no_grad(config):
    """Every config of the model zoo, shrunk by :func:`small` (every kind of block still
    runs), two-stage heads on 20 boxes, a 32x32 image."""
    first = first_with_same_model(config)
    if first != config:
        pytest.skip(f'same model as {first}, whose count is tested')
    cfg = small(config)
    model = build_constant(cfg)
    shape = (32, 32)
    with torch.no_grad():
        no_grad = count_flops(model, cfg.default_scope, shape, num_proposals=20)
    with torch.enable_grad():
        grad = count_flops(model, cfg.default_scope, shape, num_proposals=20)
    assert grad == no_grad > 0
