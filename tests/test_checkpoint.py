"""Loading the authors' FocalNet checkpoints into any focal size, and key layouts."""
import pickle
import re

import pytest
import torch

from mmfocal.models.backbones.base import StagedBackbone
from mmfocal.models.backbones.focal_transformer import FocalTransformer
from mmfocal.models.backbones.focalnet import FocalNet
from mmfocal.models.checkpoint import (Adaptation, CheckpointError, CheckpointRules, LoadReport,
                                       adapt_state_dict, detect_layout, expected_gap,
                                       known_rules, load_pretrained, rules_of,
                                       to_authors_layout, unwrap)

from test_focalnet import reference_forward

SMALL = dict(embed_dims=16, depths=(1, 2, 1, 1))
KERNEL = 'layers.{}.blocks.0.modulation.focal_layers.{}.0.weight'
F_KEY = 'layers.{}.blocks.0.modulation.f.{}'


def imagenet_state_dict(levels=2, window=3, **kwargs):
    """A classification checkpoint as the authors release it: no norm{i}, with norm/head."""
    torch.manual_seed(0)
    model = FocalNet(**SMALL, focal_levels=levels, focal_windows=window, **kwargs)
    sd = {k: v + 0.05 * torch.randn_like(v) for k, v in model.state_dict().items()
          if not k.startswith('norm')}
    sd['norm.weight'], sd['norm.bias'] = torch.ones(128), torch.zeros(128)
    sd['head.weight'], sd['head.bias'] = torch.randn(10, 128), torch.zeros(10)
    return sd


def save(tmp_path, obj, name='ckpt.pth'):
    path = tmp_path / name
    torch.save(obj, path)
    return str(path)


def build_loaded(path, **kwargs):
    model = FocalNet(**SMALL, init_cfg=dict(type='Pretrained', checkpoint=path), **kwargs)
    model.init_weights()
    return model


def test_kernels_zero_padded_at_centre(tmp_path):
    sd = imagenet_state_dict(window=3)
    model = build_loaded(save(tmp_path, {'model': sd}), focal_windows=9)
    loaded = model.state_dict()
    for stage in range(4):
        for level, size in enumerate((9, 11)):
            key = KERNEL.format(stage, level)
            src, dst = sd[key], loaded[key]
            assert dst.shape == (src.shape[0], 1, size, size)
            torch.testing.assert_close(dst[..., 3:-3, 3:-3], src)
            border = dst.clone()
            border[..., 3:-3, 3:-3] = 0
            assert (border == 0).all()


def test_kernels_centre_cropped(tmp_path):
    sd = imagenet_state_dict(window=7)
    model = build_loaded(save(tmp_path, sd), focal_windows=3)
    key = KERNEL.format(2, 1)  # 9x9 -> 5x5
    torch.testing.assert_close(model.state_dict()[key], sd[key][..., 2:-2, 2:-2])


def test_padded_model_computes_the_checkpoints_function(tmp_path):
    """Zero-padded kernels: the window-9 model is the window-3 network, exactly."""
    sd = imagenet_state_dict(window=3)
    model = build_loaded(save(tmp_path, {'state_dict': sd}), focal_windows=9).eval()
    x = torch.randn(1, 3, 70, 90)
    with torch.no_grad():
        outs = model(x)
        reference = dict(sd, **{k: v for k, v in model.state_dict().items()
                                if k.startswith('norm')})
        expected = reference_forward(reference, x, levels=2)
    for o, e in zip(outs, expected):
        torch.testing.assert_close(o, e, rtol=1e-4, atol=1e-5)


def test_focal_levels_grow_with_zero_gates(tmp_path):
    sd = imagenet_state_dict(levels=2)
    model = build_loaded(save(tmp_path, sd), focal_levels=3, focal_windows=9)
    loaded = model.state_dict()
    c = 16 * 2**1
    for part in ('weight', 'bias'):
        src, dst = sd[F_KEY.format(1, part)], loaded[F_KEY.format(1, part)]
        assert dst.shape[0] == 2 * c + 4 and src.shape[0] == 2 * c + 3
        torch.testing.assert_close(dst[:2 * c + 2], src[:2 * c + 2])  # q, ctx, level gates
        assert (dst[2 * c + 2] == 0).all()  # the new level's gate
        torch.testing.assert_close(dst[-1], src[-1])  # the global gate stays last


def test_grown_levels_keep_old_levels_function_when_new_gate_is_zero(tmp_path):
    """With the new gate zero, only the global context (now from level 3) changes."""
    sd = imagenet_state_dict(levels=2)
    model = build_loaded(save(tmp_path, sd), focal_levels=3, focal_windows=3)
    for name, p in model.named_parameters():
        if name.endswith('modulation.f.weight') or name.endswith('modulation.f.bias'):
            p.data[-1] = 0  # silence the global gate in both
            sd[name][-1] = 0
    ref_model = FocalNet(**SMALL, focal_levels=2, focal_windows=3).eval()
    ref_model.load_state_dict(sd, strict=False)
    for i in range(4):
        getattr(ref_model, f'norm{i}').load_state_dict(getattr(model, f'norm{i}').state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(model.eval()(x), ref_model(x)):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_report_lists_adapted_dropped_missing(tmp_path):
    sd = imagenet_state_dict(levels=2)
    model = FocalNet(**SMALL, focal_levels=3, focal_windows=9)
    report = load_pretrained(model, save(tmp_path, sd))
    adapted = '\n'.join(report.adapted)
    assert KERNEL.format(0, 0) in adapted and 'zero-padded' in adapted
    assert F_KEY.format(3, 'weight') in adapted and 'focal levels added' in adapted
    assert any(line.startswith('head.weight') for line in report.dropped)
    assert any(line.startswith('norm.bias') for line in report.dropped)
    assert KERNEL.format(0, 2) in report.missing  # the new level keeps its init
    assert 'norm0.weight' in report.missing
    assert not report.unexpected
    assert len(report.lines()) == len(report.adapted) + len(report.dropped) + len(
        report.missing)


def test_load_logs_every_key(tmp_path, capsys):
    from mmengine.logging import MMLogger
    MMLogger.get_instance('mmfocal-test-load', log_level='INFO')
    sd = imagenet_state_dict()
    model = FocalNet(**SMALL, focal_windows=5)
    report = load_pretrained(model, save(tmp_path, sd), logger='mmfocal-test-load')
    out = capsys.readouterr().out
    for line in report.lines():
        assert line in out


def test_unexpected_keys_are_reported(tmp_path):
    sd = imagenet_state_dict()
    sd['ema.decay'] = torch.ones(1)
    report = load_pretrained(FocalNet(**SMALL, focal_windows=3), save(tmp_path, sd))
    assert report.unexpected == ['ema.decay']


def test_blocks_the_model_lacks_are_an_error_or_with_strict_false_reported(tmp_path):
    """A deeper variant's checkpoint (FocalNet-S into -T: the same widths, more blocks)."""
    sd = imagenet_state_dict()
    sd['layers.0.blocks.5.norm1.weight'] = torch.ones(16)
    path = save(tmp_path, sd)
    with pytest.raises(CheckpointError, match=r'1 tensors of the checkpoint have no place in '
                                              r'the model: layers\.0\.blocks\.5\.norm1'):
        load_pretrained(FocalNet(**SMALL, focal_windows=3), path)
    report = load_pretrained(FocalNet(**SMALL, focal_windows=3), path, strict=False)
    assert report.unexpected == ['layers.0.blocks.5.norm1.weight']


@pytest.mark.parametrize('wrap', [
    lambda sd: {'state_dict': {f'backbone.{k}': v for k, v in sd.items()} | {
        'neck.lateral_convs.0.conv.weight': torch.zeros(1), 'rpn_head.rpn_cls.bias':
        torch.zeros(1)}, 'meta': {'epoch': 12}},
    lambda sd: {'model': {f'module.backbone.{k}': v for k, v in sd.items()}},
    lambda sd: {'teacher': {f'encoder.{k}': v for k, v in sd.items()}},
    lambda sd: {f'visual.{k}': v for k, v in sd.items()},
])
def test_prefixes_and_wrappers(tmp_path, wrap):
    sd = imagenet_state_dict()
    model = FocalNet(**SMALL, focal_windows=3)
    report = load_pretrained(model, save(tmp_path, wrap(sd)))
    assert not report.unexpected and not report.adapted
    for k, v in model.state_dict().items():
        if not k.startswith('norm'):
            torch.testing.assert_close(v, sd[k])


def test_detector_checkpoint_drops_non_backbone_keys_with_report():
    sd = {'backbone.patch_embed.proj.weight': torch.zeros(1), 'neck.a': torch.zeros(1),
          'neck.b': torch.zeros(1), 'roi_head.c': torch.zeros(1)}
    report = LoadReport()
    assert list(unwrap({'state_dict': sd}, report=report)) == ['patch_embed.proj.weight']
    assert report.dropped == ["neck.* (2 keys) (outside 'backbone.')",
                              "roi_head.* (1 keys) (outside 'backbone.')"]


def test_fewer_levels_than_checkpoint_is_an_error(tmp_path):
    path = save(tmp_path, imagenet_state_dict(levels=3))
    with pytest.raises(CheckpointError, match='focal levels can be added on load, not removed'):
        build_loaded(path, focal_levels=2)


def test_other_embed_dims_is_an_error(tmp_path):
    path = save(tmp_path, imagenet_state_dict())
    model = FocalNet(embed_dims=24, depths=(1, 2, 1, 1), focal_windows=3)
    with pytest.raises(CheckpointError, match=r'patch_embed.proj.weight.*\(16, 3, 4, 4\).*'
                                              r'\(24, 3, 4, 4\).*variant'):
        load_pretrained(model, path)


def test_not_a_checkpoint(tmp_path):
    text = tmp_path / 'notes.pth'
    text.write_text('not weights')
    with pytest.raises(CheckpointError, match='is not a weight file'):
        build_loaded(str(text))
    with pytest.raises(CheckpointError, match='not found'):
        build_loaded(str(tmp_path / 'missing.pth'))
    with pytest.raises(CheckpointError, match='expected a dict of tensors'):
        build_loaded(save(tmp_path, {'model': {'epoch': 3}}))
    evil = tmp_path / 'evil.pth'  # weights_only refuses arbitrary objects
    with open(evil, 'wb') as f:
        pickle.dump({'x': object()}, f)
    with pytest.raises(CheckpointError):
        build_loaded(str(evil))


# --------------------------------------------------------------------- other layouts


def to_timm(sd):
    """The authors' layout written the way timm stores FocalNet (independent inverse)."""
    out = {}
    for k, v in sd.items():
        parts = k.split('.')
        if parts[0] == 'patch_embed':
            k = 'stem.' + '.'.join(parts[1:])
        elif parts[0] == 'layers' and parts[2] == 'downsample':
            k = '.'.join(['layers', str(int(parts[1]) + 1)] + parts[2:])
        k = k.replace('gamma_1', 'ls1.gamma').replace('gamma_2', 'ls2.gamma')
        k = k.replace('modulation.ln.', 'modulation.norm.')
        if k.startswith('head.'):
            k = 'head.fc.' + k[5:]
        if v.dim() == 2 and k.split('.')[-2] in ('f', 'proj', 'fc1', 'fc2'):
            v = v[:, :, None, None]
        out[k] = v
    return out


def to_huggingface(sd):
    out = {}
    for k, v in sd.items():
        parts = k.split('.')
        if parts[0] == 'patch_embed':
            k = {'proj': 'embeddings.patch_embeddings.projection',
                 'norm': 'embeddings.norm'}[parts[1]] + '.' + parts[2]
        elif parts[0] == 'layers':
            rest = parts[2:]
            if rest[0] == 'blocks':
                rest[0] = 'layers'
            names = {'f': 'projection_in', 'h': 'projection_context',
                     'proj': 'projection_out', 'ln': 'layernorm'}
            if 'modulation' in rest:
                i = rest.index('modulation') + 1
                rest[i] = names.get(rest[i], rest[i])
            if rest[0] == 'downsample' and rest[1] == 'proj':
                rest[1] = 'projection'
            k = '.'.join(['encoder', 'stages', parts[1]] + rest)
        elif parts[0] == 'norm':
            k = 'layernorm.' + parts[1]
        elif parts[0] == 'head':
            k = 'classifier.' + parts[1]
        out['focalnet.' + k if not k.startswith('classifier') else k] = v
    return out


@pytest.mark.parametrize('convert', [to_timm, to_huggingface])
def test_other_layouts_convert_to_authors(convert):
    sd = imagenet_state_dict(use_layerscale=True, use_postln_in_modulation=True)
    converted = to_authors_layout(unwrap(convert(sd)))
    assert converted.keys() == sd.keys()
    for k in sd:
        torch.testing.assert_close(converted[k], sd[k], msg=k)


def test_adapt_state_dict_is_usable_without_a_file():
    sd = imagenet_state_dict()
    model = FocalNet(**SMALL, focal_windows=5)
    adapted, report = adapt_state_dict(sd, model.state_dict())
    assert adapted[KERNEL.format(0, 0)].shape[-1] == 5
    assert len(report.adapted) == 2 * 5  # two kernels in each of five blocks


def test_detector_init_weights_loads_backbone_checkpoint(tmp_path):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    register_all_modules()
    sd = imagenet_state_dict()
    base = tmp_path / 'retinanet.py'
    base.write_text("_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'")
    cfg = Config.fromfile(str(base))
    cfg.model.backbone = dict(type='FocalNet', **SMALL, focal_windows=9, out_indices=(1, 2, 3),
                              init_cfg=dict(type='Pretrained',
                                            checkpoint=save(tmp_path, {'model': sd})))
    cfg.model.neck.in_channels = [32, 64, 128]
    detector = MODELS.build(cfg.model)
    detector.init_weights()
    loaded = detector.backbone.state_dict()
    torch.testing.assert_close(loaded['layers.1.blocks.0.mlp.fc1.weight'],
                               sd['layers.1.blocks.0.mlp.fc1.weight'])
    torch.testing.assert_close(loaded[KERNEL.format(2, 0)][..., 3:-3, 3:-3],
                               sd[KERNEL.format(2, 0)])


def test_reads_a_checkpoint_written_by_mmengine(tmp_path):
    """A trained detector's checkpoint holds the message hub's HistoryBuffer (numpy inside)
    beside the weights; its backbone loads with weights_only=True. In a fresh process, so
    that no earlier test has allow-listed those objects already."""
    import subprocess
    import sys
    from mmengine.logging import HistoryBuffer
    history = HistoryBuffer()
    history.update(0.5)
    sd = {f'backbone.{k}': v for k, v in imagenet_state_dict().items()}
    path = save(tmp_path, dict(meta=dict(epoch=1), state_dict=sd,
                               message_hub=dict(log_scalars={'loss': history})))
    code = ('from mmfocal.models.backbones.focalnet import FocalNet\n'
            'from mmfocal.models.checkpoint import load_pretrained\n'
            'model = FocalNet(embed_dims=16, depths=(1, 2, 1, 1), focal_windows=3)\n'
            f'report = load_pretrained(model, {path!r}, prefix="backbone.")\n'
            'assert not report.unexpected and not report.adapted\n'
            'print("loaded", len(model.state_dict()))\n')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert 'loaded' in result.stdout


# ------------------------------------------------- every layout loads the same function

LAYOUT_OPTIONS = dict(use_layerscale=True, use_postln_in_modulation=True)


def dense_weights():
    """Backbone weights in the authors' layout with trained-looking output norms norm{i}."""
    sd = imagenet_state_dict(**LAYOUT_OPTIONS)
    for i in range(4):
        sd[f'norm{i}.weight'] = 1 + 0.1 * torch.randn(16 * 2**i)
        sd[f'norm{i}.bias'] = 0.1 * torch.randn(16 * 2**i)
    return sd


def classification(sd):
    return {k: v for k, v in sd.items() if not re.match(r'norm\d', k)}


def without_classifier(sd):
    return {k: v for k, v in sd.items() if not k.startswith('classifier.')}


LAYOUTS = {
    'authors_imagenet': lambda sd: {'model': classification(sd)},
    'authors_mmdet2_detector': lambda sd: {
        'meta': {'epoch': 12}, 'state_dict': {
            **{f'backbone.{k}': v for k, v in sd.items()
               if not k.startswith(('head', 'norm.'))},
            'neck.fpn_convs.0.conv.weight': torch.zeros(2),
            'rpn_head.rpn_cls.bias': torch.zeros(3)}},
    'timm': lambda sd: to_timm(classification(sd)),
    'hf_FocalNetModel': lambda sd: without_classifier(
        {k.replace('focalnet.', '', 1): v for k, v in to_huggingface(classification(sd)).items()}),
    'hf_FocalNetForImageClassification': lambda sd: to_huggingface(classification(sd)),
    'hf_FocalNetBackbone': lambda sd: without_classifier(to_huggingface(classification(sd))),
    'mmfocal': lambda sd: {'state_dict': {k: v for k, v in sd.items()
                                          if not k.startswith(('head', 'norm.'))}},
}


@pytest.mark.parametrize('layout', list(LAYOUTS))
def test_every_layout_loads_the_same_function(tmp_path, layout):
    """Each layout, built from the same weights, loads into exactly the model built directly
    from those weights (output norms norm{i}: the checkpoint's where the layout has them)."""
    weights = dense_weights()
    checkpoint = LAYOUTS[layout](weights)
    model = build_loaded(save(tmp_path, checkpoint), focal_windows=3, **LAYOUT_OPTIONS)
    direct = FocalNet(**SMALL, focal_windows=3, **LAYOUT_OPTIONS)
    has_norms = layout in ('authors_mmdet2_detector', 'mmfocal')
    direct_sd = {k: v for k, v in weights.items() if not k.startswith(('head', 'norm.'))}
    if not has_norms:
        direct_sd.update({k: v for k, v in direct.state_dict().items() if k.startswith('norm')})
    direct.load_state_dict(direct_sd, strict=True)
    x = torch.randn(2, 3, 40, 56)
    with torch.no_grad():
        for a, b in zip(model.eval()(x), direct.eval()(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert torch.equal(model.norm0.weight, weights['norm0.weight']) == has_norms


def test_hugging_face_model_keys_are_not_taken_for_an_encoder_wrapper():
    sd = {'encoder.stages.0.layers.1.norm1.weight': torch.ones(2),
          'encoder.stages.2.downsample.projection.bias': torch.ones(2),
          'module.encoder.patch_embed.proj.bias': torch.ones(2)}
    assert list(unwrap(sd)) == ['encoder.stages.0.layers.1.norm1.weight',
                                'encoder.stages.2.downsample.projection.bias',
                                'patch_embed.proj.bias']
    assert sorted(to_authors_layout(unwrap(sd))) == [
        'layers.0.blocks.1.norm1.weight', 'layers.2.downsample.proj.bias',
        'patch_embed.proj.bias']


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('suffix', ['.pth', '.safetensors'])
def test_half_precision_and_safetensors_load_into_float32(tmp_path, dtype, suffix):
    from safetensors.torch import save_file
    sd = {k: v.to(dtype) for k, v in imagenet_state_dict().items()}
    path = str(tmp_path / f'weights{suffix}')
    if suffix == '.safetensors':
        save_file(to_huggingface(sd), path)  # what the hub serves
    else:
        torch.save({'model': sd}, path)
    model = build_loaded(path, focal_windows=5)
    loaded = model.state_dict()
    assert all(v.dtype == torch.float32 for v in loaded.values())
    key = 'layers.2.blocks.0.mlp.fc1.weight'
    torch.testing.assert_close(loaded[key], sd[key].float(), rtol=0, atol=0)
    torch.testing.assert_close(loaded[KERNEL.format(1, 0)][..., 1:-1, 1:-1],
                               sd[KERNEL.format(1, 0)].float(), rtol=0, atol=0)


def test_damaged_safetensors_file_is_a_checkpoint_error(tmp_path):
    path = tmp_path / 'cut.safetensors'
    path.write_bytes(b'\x10\x00\x00\x00\x00\x00\x00\x00{"a":')
    with pytest.raises(CheckpointError, match='not a readable safetensors file'):
        build_loaded(str(path))


def test_checkpoint_matching_no_tensor_is_an_error_showing_keys(tmp_path):
    sd = {f'trunk.block{i}.weight': torch.zeros(3) for i in range(8)}
    with pytest.raises(CheckpointError, match=r'matches no tensor of the model.*'
                                              r'trunk\.block0\.weight.*patch_embed\.proj'):
        build_loaded(save(tmp_path, {'model': sd}))


def test_weights_left_at_init_are_an_error_or_with_strict_false_a_warning(tmp_path, capsys):
    from mmengine.logging import MMLogger
    logger = MMLogger.get_instance('mmfocal-test-strict', log_level='INFO')
    sd = imagenet_state_dict()
    del sd['layers.1.blocks.1.mlp.fc2.weight'], sd['patch_embed.norm.bias']
    path = save(tmp_path, sd)
    with pytest.raises(CheckpointError, match=r'2 tensors of the model would keep their init'
                                              r'.*patch_embed\.norm\.bias.*strict=False'):
        build_loaded(path, focal_windows=3)
    model = FocalNet(**SMALL, focal_windows=3)
    before = model.state_dict()['patch_embed.norm.bias'].clone()
    report = load_pretrained(model, path, strict=False, logger=logger)
    out = capsys.readouterr().out
    assert 'WARNING' in out and 'would keep their initialisation' in out
    total = len(model.state_dict())
    assert f'loaded {total - 8 - 2} of {total} tensors of the model' in out  # 8: norm0..3
    assert 'patch_embed.norm.bias' in report.missing
    torch.testing.assert_close(model.state_dict()['patch_embed.norm.bias'], before)


def test_expected_gaps_are_listed_not_errors(tmp_path, capsys):
    """Output norms and the kernels of added focal levels keep their initialisation."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_instance('mmfocal-test-gaps', log_level='INFO')
    sd = imagenet_state_dict(levels=2)
    model = FocalNet(**SMALL, focal_levels=3, focal_windows=9)
    report = load_pretrained(model, save(tmp_path, sd), logger=logger)
    gaps = sorted(report.missing)
    assert gaps == sorted([f'norm{i}.{p}' for i in range(4) for p in ('weight', 'bias')] +
                          [KERNEL.format(i, 2).replace('blocks.0', f'blocks.{j}')
                           for i, depth in enumerate(SMALL['depths']) for j in range(depth)])
    total = len(model.state_dict())
    assert f'loaded {total - len(gaps)} of {total} tensors' in capsys.readouterr().out


def test_missing_kernel_of_an_existing_level_is_an_error(tmp_path):
    sd = imagenet_state_dict(levels=2)
    del sd[KERNEL.format(3, 1)]
    with pytest.raises(CheckpointError, match=re.escape(KERNEL.format(3, 1))):
        build_loaded(save(tmp_path, sd), focal_windows=3)


@pytest.mark.parametrize('bad', [float('nan'), float('inf'), -float('inf')])
def test_non_finite_checkpoint_is_refused_naming_the_tensor(tmp_path, bad):
    sd = imagenet_state_dict()
    sd['layers.1.blocks.1.modulation.h.bias'][3] = bad
    with pytest.raises(CheckpointError, match=r'layers\.1\.blocks\.1\.modulation\.h\.bias '
                                              r'holds 1 non-finite'):
        build_loaded(save(tmp_path, {'model': sd}), focal_windows=3)


@pytest.mark.parametrize('init_cfg, match', [
    (dict(type='Pretrained', checkpoint='x.pth', strickt=False), r"unknown keys \['strickt'\]"),
    (dict(type='Pretrained', checkpoint='x.pth', strict='no'), 'strict must be True or False'),
    (dict(type='Pretrained', checkpoint=3), 'needs a checkpoint path'),
])
def test_bad_pretrained_init_cfg(init_cfg, match):
    with pytest.raises(ValueError, match=match):
        FocalNet(**SMALL, init_cfg=init_cfg)


# ------------------------------------------------- rules declared by the backbones


class ScaledFocalNet(FocalNet):
    """A backbone of its own rules only: its ``proj`` weights load scaled by 2 from a
    checkpoint whose ``proj`` has half as many input columns (a rule no other model has)."""
    checkpoint_rules = FocalNet.checkpoint_rules + CheckpointRules(adaptations=(Adaptation(
        key=r'\.modulation\.proj\.weight$', what='doubled projections',
        fits=lambda value, shape: value.shape[0] == shape[0] and 2 * value.shape[1] == shape[1],
        adapt=lambda value, shape, key: value.repeat(1, 2),
        how=lambda value, shape: 'columns repeated'), ))


def test_a_backbone_declares_its_own_adaptations(tmp_path):
    """load_pretrained applies what the model's class declares, no more: the same
    checkpoint loads into the class that declares the rule and is refused by FocalNet."""
    sd = imagenet_state_dict()
    key = 'layers.0.blocks.0.modulation.proj.weight'
    sd[key] = sd[key][:, :8].clone()
    path = save(tmp_path, sd)
    model = ScaledFocalNet(**SMALL, init_cfg=dict(type='Pretrained', checkpoint=path))
    report = load_pretrained(model, path)
    torch.testing.assert_close(model.state_dict()[key], sd[key].repeat(1, 2))
    assert any(line.startswith(f'{key}: (16, 8) -> (16, 16) columns repeated')
               for line in report.adapted)
    with pytest.raises(CheckpointError, match=r'Only focal kernels, focal-level gates are '
                                              r'adapted'):
        build_loaded(path)


def test_rules_of_the_backbones_and_of_a_checkpoint_without_a_model():
    """Each backbone extends StagedBackbone's rules; without a model every registered
    backbone's rules apply (a Focal Transformer buffer is dropped, a timm FocalNet key
    converted), while FocalNet's own rules know no Focal Transformer table."""
    base = StagedBackbone.checkpoint_rules
    for cls in (FocalNet, FocalTransformer):
        assert set(base.expected_gaps) <= set(cls.checkpoint_rules.expected_gaps)
        assert rules_of(cls.__new__(cls)) is cls.checkpoint_rules
    known = known_rules()
    assert known.dropped('layers.0.blocks.0.attn.relative_position_index') is not None
    assert FocalNet.checkpoint_rules.dropped(
        'layers.0.blocks.0.attn.relative_position_index') is None
    assert detect_layout({'stem.proj.weight': torch.zeros(1)}) == 'timm'
    assert detect_layout({'stem.proj.weight': torch.zeros(1)},
                         FocalTransformer.checkpoint_rules) == 'authors'
    table = 'layers.0.blocks.0.attn.relative_position_bias_table_to_neighbors'
    assert expected_gap(table, {}, {}, FocalTransformer.checkpoint_rules)
    assert not expected_gap(table, {}, {}, FocalNet.checkpoint_rules)


def test_the_checkpoint_machinery_names_no_backbone():
    """What is a backbone's own (class names, module names of its keys) lives in its module."""
    import mmfocal.models.checkpoint as checkpoint
    with open(checkpoint.__file__) as f:
        code = re.sub(r'"""(.|\n)*?"""', '', f.read())  # docstrings may give examples
    for word in ('FocalNet', 'FocalTransformer', 'modulation', 'relative_position',
                 'focal_layers', 'stem.', 'encoder.stages'):
        assert word not in code, word
