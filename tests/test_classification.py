"""Image classification in mmpretrain: both backbones in its registry, mmpretrain's
``ImageClassifier`` loading the authors', timm's, Hugging Face's and its own checkpoints
whole (logits against the reference implementations), and the hand-off of a trained
classifier's checkpoint to a detection config."""
import os
import os.path as osp
import re
import subprocess
import textwrap

import numpy as np
import pytest
import torch

pytest.importorskip('mmpretrain.models', reason='image classification needs mmpretrain '
                    "and torchvision: pip install '.[cls]'")

from mmengine.registry import DefaultScope  # noqa: E402
from mmengine.runner import load_checkpoint  # noqa: E402
from mmpretrain.registry import MODELS  # noqa: E402

from mmfocal.models.backbones.focal_transformer import FocalTransformer  # noqa: E402
from mmfocal.models.backbones.focalnet import FocalNet  # noqa: E402
from mmfocal.models import checkpoint  # noqa: E402
from mmfocal.models.checkpoint import CheckpointError, load_pretrained  # noqa: E402

from _helpers import PYTHON, ROOT, focalnet_variants, run_checked  # noqa: E402
from test_checkpoint import to_huggingface, to_timm  # noqa: E402
from test_focal_transformer import reference_pool, reference_window  # noqa: E402
from test_focalnet import reference_forward  # noqa: E402

#: the authors' FocalNet variants' structure (flags, levels, windows, stages; from
#: configs/_base_/models/focalnet.py), at a small width and depth: what each released
#: file's function depends on
FOCALNET = {name: {k: v for k, v in focalnet_variants()[name].items()
                   if k not in ('embed_dims', 'depths')}
            for name in ('t_srf', 't_lrf', 'l_fl3', 'l_fl4', 'h_fl3')}
FOCALNET['b_iso'] = dict(focalnet_variants()['b_iso'], embed_dims=8, depths=(2, ))
REFERENCE_FLAGS = ('use_conv_embed', 'use_postln', 'normalize_modulator', 'patch_size')


def classifier(backbone: dict, classes: int, width: int):
    """mmpretrain's ImageClassifier around ``backbone`` (final norm, GAP, linear head)."""
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(dict(
            type='ImageClassifier', backbone=backbone, neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=classes, in_channels=width))).eval()


def focalnet_arch(name):
    arch = {'embed_dims': 8, 'depths': (1, 1, 2, 1), **FOCALNET[name]}
    return arch, arch['embed_dims'] * 2**(len(arch['depths']) - 1)


def authors_weights(arch, classes, seed=0):
    """An authors'-layout ImageNet state dict (backbone, final ``norm``, ``head``) with
    every tensor away from its initialisation."""
    torch.manual_seed(seed)
    model = FocalNet(**arch, final_norm=True)
    sd = {k: v + 0.05 * torch.randn_like(v) for k, v in model.state_dict().items()}
    sd['head.weight'] = 0.05 * torch.randn(classes, model.num_features[-1])
    sd['head.bias'] = 0.05 * torch.randn(classes)
    return sd


def reference_logits(sd, arch, x):
    return reference_forward(sd, x, arch['focal_levels'], classify=True, **{
        k: v for k, v in arch.items() if k in REFERENCE_FLAGS})


def load_and_run(model, path, x):
    load_checkpoint(model, str(path), map_location='cpu')
    with torch.no_grad():
        return model(x)


# ------------------------------------------------------------------------ registration


def test_both_backbones_build_in_mmpretrains_registry():
    import mmfocal  # noqa: F401
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        for name, kwargs in (('FocalNet', dict(depths=(1, 1), embed_dims=8)),
                             ('FocalTransformer', dict(depths=(1, 1), embed_dims=8,
                                                       num_heads=(1, 2),
                                                       focal_windows=(3, 1)))):
            for key in (name, f'mmpretrain.{name}'):
                model = MODELS.build(dict(type=key, final_norm=True, **kwargs))
                assert type(model).__name__ == name
                assert [tuple(o.shape) for o in model(torch.randn(1, 3, 32, 32))] == [
                    (1, 16, 4, 4)]


# ------------------------------------------------------ FocalNet: every layout, variant


@pytest.mark.parametrize('name', sorted(FOCALNET))
def test_focalnet_variants_give_the_authors_logits(tmp_path, name):
    """The authors' ImageNet file ({'model': ...}: backbone, norm, head) loads whole into
    the classifier, whose logits equal the reference's from the same weights."""
    arch, width = focalnet_arch(name)
    sd = authors_weights(arch, classes=10)
    torch.save({'model': sd, 'epoch': 300, 'max_accuracy': 82.1}, tmp_path / 'authors.pth')
    model = classifier(dict(type='FocalNet', final_norm=True, **arch), 10, width)
    x = torch.randn(2, 3, 64, 48)
    logits = load_and_run(model, tmp_path / 'authors.pth', x)
    torch.testing.assert_close(logits, reference_logits(sd, arch, x), rtol=1e-5, atol=1e-5)


LAYOUTS = {
    'authors': lambda sd: {'model': sd},
    'timm': to_timm,
    'huggingface': to_huggingface,
    # what mmpretrain's runner saves for this classifier
    'mmpretrain': lambda sd: {'meta': {'epoch': 1}, 'state_dict': {
        **{f'backbone.{k}': v for k, v in sd.items() if not k.startswith('head.')},
        'head.fc.weight': sd['head.weight'], 'head.fc.bias': sd['head.bias']}},
}


@pytest.mark.parametrize('layout', sorted(LAYOUTS))
@pytest.mark.parametrize('classes', [1000, 21842])
def test_every_layout_and_head_gives_the_same_logits(tmp_path, layout, classes):
    arch, width = focalnet_arch('l_fl4')  # layer scale, post-norms: every renamed key
    arch.update(use_postln_in_modulation=True)
    sd = authors_weights(arch, classes)
    torch.save(LAYOUTS[layout](sd), tmp_path / 'ckpt.pth')
    model = classifier(dict(type='FocalNet', final_norm=True, **arch), classes, width)
    x = torch.randn(1, 3, 40, 40)
    logits = load_and_run(model, tmp_path / 'ckpt.pth', x)
    assert logits.shape == (1, classes)
    torch.testing.assert_close(logits, reference_logits(sd, arch, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('suffix', ['.pth', '.safetensors'])
def test_half_precision_files_give_the_logits_of_their_rounded_weights(tmp_path, suffix):
    """An fp16 file (the authors' L-fl4 release, the hub's safetensors) loads into the
    float32 classifier: its logits are the reference's from the same rounded weights."""
    arch, width = focalnet_arch('t_lrf')
    sd = {k: v.half() for k, v in authors_weights(arch, 10).items()}
    path = tmp_path / f'half{suffix}'
    if suffix == '.safetensors':
        from safetensors.torch import save_file
        save_file(to_huggingface(sd), str(path))
    else:
        torch.save({'model': sd}, path)
    model = classifier(dict(type='FocalNet', final_norm=True, **arch), 10, width)
    x = torch.randn(2, 3, 48, 48)
    logits = load_and_run(model, path, x)
    rounded = {k: v.float() for k, v in sd.items()}
    torch.testing.assert_close(logits, reference_logits(rounded, arch, x), rtol=1e-5,
                               atol=1e-5)


def test_timms_own_focalnet_gives_the_same_logits(tmp_path):
    """timm's FocalNet, a peer implementation with its own key layout, and the classifier
    loading its state dict compute the same logits."""
    timm_focalnet = pytest.importorskip('timm.models.focalnet')
    torch.manual_seed(0)
    peer = timm_focalnet.FocalNet(
        embed_dim=8, depths=(1, 1, 2, 1), focal_levels=(3, ) * 4, focal_windows=(3, ) * 4,
        num_classes=10, use_overlap_down=True, use_post_norm=True, layerscale_value=1e-4,
        use_post_norm_in_modulation=True, normalize_modulator=True).eval()
    with torch.no_grad():
        for p in peer.parameters():
            p.add_(0.05 * torch.randn_like(p))
    torch.save(peer.state_dict(), tmp_path / 'timm.pth')
    model = classifier(dict(type='FocalNet', embed_dims=8, depths=(1, 1, 2, 1),
                            focal_levels=3, focal_windows=3, use_conv_embed=True,
                            use_postln=True, use_layerscale=True,
                            use_postln_in_modulation=True, normalize_modulator=True,
                            final_norm=True), 10, 64)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = peer(x)
    torch.testing.assert_close(load_and_run(model, tmp_path / 'timm.pth', x), expected,
                               rtol=1e-5, atol=1e-5)


def test_a_headless_release_loads_the_backbone_and_keeps_the_head(tmp_path, monkeypatch):
    """FocalNet-H fl4's file has no head: the backbone and final norm load, the head keeps
    its initialisation, and the log says so."""
    arch, width = focalnet_arch('h_fl3')
    sd = {k: v for k, v in authors_weights(arch, 10).items() if not k.startswith('head.')}
    torch.save(to_timm(sd), tmp_path / 'headless.pth')
    model = classifier(dict(type='FocalNet', final_norm=True, **arch), 10, width)
    head = model.head.fc.weight.clone()
    logged = []
    monkeypatch.setattr(checkpoint, 'print_log', lambda msg, **kwargs: logged.append(msg))
    load_checkpoint(model, str(tmp_path / 'headless.pth'), map_location='cpu')
    assert torch.equal(model.head.fc.weight, head)
    torch.testing.assert_close(model.backbone.norm.weight, sd['norm.weight'])
    assert any('no head in the checkpoint (the head keeps its initialisation)' in line
               for line in logged), logged


@pytest.mark.parametrize('change, match', [
    (dict(embed_dims=16), 'does the checkpoint belong to this variant'),  # FocalNet-S vs -T
    (dict(depths=(1, 1, 3, 1)), 'would keep their initialisation'),  # a deeper model
    (dict(depths=(1, 1, 1, 1)), r'16 tensors of the checkpoint have no place in the model: '
                                r'layers\.2\.blocks\.1\.'),  # FocalNet-S into -T
])
def test_a_checkpoint_of_another_size_is_an_error(tmp_path, change, match):
    arch, _ = focalnet_arch('t_srf')
    torch.save({'model': authors_weights(arch, 10)}, tmp_path / 'other.pth')
    arch = {**arch, **change}
    model = classifier(dict(type='FocalNet', final_norm=True, **arch),
                       10, arch['embed_dims'] * 8)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(model, str(tmp_path / 'other.pth'), map_location='cpu')


def test_a_head_of_another_width_is_an_error():
    model = classifier(dict(type='FocalNet', embed_dims=8, depths=(1, 1), focal_windows=3,
                            final_norm=True), 10, 16)
    sd = {k: v for k, v in model.backbone.state_dict().items()}
    sd.update({'head.weight': torch.zeros(10, 32), 'head.bias': torch.zeros(10)})
    with pytest.raises(CheckpointError, match='head takes 32 features, the backbone gives 16'):
        model.load_state_dict(sd)


def test_a_head_of_another_class_count_is_named(tmp_path):
    """A 1000-class file into a 10-class classifier: the head's shapes are named."""
    arch, width = focalnet_arch('t_srf')
    torch.save({'model': authors_weights(arch, 1000)}, tmp_path / 'in1k.pth')
    model = classifier(dict(type='FocalNet', final_norm=True, **arch), 10, width)
    with pytest.raises(RuntimeError, match=r'head\.fc\.weight.*\[1000, 64\].*\[10, 64\]'):
        load_checkpoint(model, str(tmp_path / 'in1k.pth'), map_location='cpu', strict=True)


def classifier_config(arch, width, classes, **model):
    from mmengine.config import Config
    return Config(dict(
        default_scope='mmpretrain',
        model=dict(type='ImageClassifier', backbone=dict(type='FocalNet', final_norm=True,
                                                         **arch),
                   neck=dict(type='GlobalAveragePooling'),
                   head=dict(type='LinearClsHead', num_classes=classes, in_channels=width),
                   data_preprocessor=dict(mean=[0.] * 3, std=[1.] * 3, to_rgb=False),
                   **model),
        test_dataloader=dict(dataset=dict(type='CustomDataset', pipeline=[
            dict(type='LoadImageFromFile'), dict(type='PackInputs')]))))


def test_get_model_init_cfg_and_the_inferencer_load_the_authors_file(tmp_path):
    """mmpretrain's get_model(cfg, pretrained=...), the classifier's own init_cfg and
    ImageClassificationInferencer take the authors' file whole: the reference's logits
    and scores."""
    from mmpretrain import ImageClassificationInferencer, get_model
    arch, width = focalnet_arch('t_lrf')
    sd = authors_weights(arch, 10)
    path = str(tmp_path / 'authors.pth')
    torch.save({'model': sd}, path)
    image = np.random.default_rng(0).integers(0, 255, (40, 56, 3), dtype=np.uint8)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    expected = reference_logits(sd, arch, x)

    model = get_model(classifier_config(arch, width, 10), pretrained=path).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(classifier_config(
            arch, width, 10, init_cfg=dict(type='Pretrained', checkpoint=path)).model)
    model.init_weights()
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), expected, rtol=1e-5, atol=1e-5)
    with DefaultScope.overwrite_default_scope('mmpretrain'):  # its pipeline's registry
        inferencer = ImageClassificationInferencer(classifier_config(arch, width, 10),
                                                   pretrained=path, device='cpu')
        result, = inferencer(image)
    torch.testing.assert_close(torch.as_tensor(result['pred_scores']),
                               expected[0].softmax(-1), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ Focal Transformer


def focal_transformer_reference_logits(model, head, x):
    """Logits (1, classes) of the authors' ImageNet Focal Transformer: the stem,
    downsampling, norms and MLPs of ``model`` as plain modules, every window's attention
    by the slow reference (keys gathered one by one, surrounding tokens wrapped as the
    model says); the final norm, the mean over the map and the head."""
    t = model.patch_embed(x)
    for stage in model.layers:
        for block in stage.blocks:
            y = block.norm1(t)[0]
            pooled = [reference_pool(y, block, k) for k in range(block.pooled_levels)]
            attended = torch.zeros_like(y)
            w = block.window_size
            for wy in range(-(-y.shape[0] // w)):
                for wx in range(-(-y.shape[1] // w)):
                    window = attended[wy * w:(wy + 1) * w, wx * w:(wx + 1) * w]
                    ref = reference_window(block.attn, block, y, pooled, wy, wx,
                                           block.wrap_neighbors)
                    window.copy_(ref[:window.shape[0], :window.shape[1]])
            t = t + attended[None]
            t = t + block.mlp(block.norm2(t))
        if stage.downsample is not None:
            t = stage.downsample(t.permute(0, 3, 1, 2))
    return model.norm(t).mean((1, 2)) @ head['head.weight'].t() + head['head.bias']


@pytest.mark.parametrize('use_conv_embed', [False, True])
def test_focal_transformer_gives_the_authors_logits(tmp_path, use_conv_embed):
    """The released ImageNet models' structure (focal windows 7, 5, 3, 1, surrounding tokens
    wrapped around the map, 'fc' pooling) at a small width: an authors' file loads whole
    and the logits equal the slow reference's."""
    arch = dict(embed_dims=8, depths=(1, 2, 1, 1), num_heads=(1, 2, 2, 4),
                focal_windows=(7, 5, 3, 1), wrap_neighbors=True, use_conv_embed=use_conv_embed)
    torch.manual_seed(0)
    source = FocalTransformer(**arch, final_norm=True).double().eval()
    sd = {k: v + 0.05 * torch.randn_like(v) if v.is_floating_point() else v
          for k, v in source.state_dict().items()}
    source.load_state_dict(sd)
    sd.update({'head.weight': 0.05 * torch.randn(10, 64, dtype=torch.float64),
               'head.bias': 0.05 * torch.randn(10, dtype=torch.float64)})
    torch.save({'model': sd}, tmp_path / 'focal_t.pth')
    model = classifier(dict(type='FocalTransformer', final_norm=True, **arch), 10, 64).double()
    x = torch.randn(1, 3, 112, 84, dtype=torch.float64)
    with torch.no_grad():
        logits = load_and_run(model, tmp_path / 'focal_t.pth', x)
        expected = focal_transformer_reference_logits(source, sd, x)
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-7)


# -------------------------------------------------- from pretraining to detection


def write_image_folders(root, classes=2, per_class=4, size=32, seed=0):
    """A CustomDataset layout (root/CLASS/NAME.png) of random images."""
    import cv2
    rng = np.random.default_rng(seed)
    for c in range(classes):
        folder = osp.join(root, f'class{c}')
        os.makedirs(folder, exist_ok=True)
        for i in range(per_class):
            image = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
            cv2.imwrite(osp.join(folder, f'{i}.png'), image)


HANDOFF_CONFIG = '''
_base_ = ['mmpretrain::_base_/default_runtime.py']
custom_imports = dict(imports=['mmfocal'], allow_failed_imports=False)
# the backbone of configs/detection/demo_mask_rcnn_focalnet.py, ImageNet focal windows
model = dict(
    type='ImageClassifier',
    backbone=dict(type='FocalNet', embed_dims=32, depths=(1, 1, 2, 1), focal_levels=2,
                  focal_windows=3, drop_path_rate=0., final_norm=True),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=2, in_channels=256,
              loss=dict(type='CrossEntropyLoss')))
data_preprocessor = dict(num_classes=2, mean=[127.5] * 3, std=[127.5] * 3, to_rgb=True)
pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=4, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='CustomDataset', data_root={root!r}, pipeline=pipeline))
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3))
train_cfg = dict(by_epoch=True, max_epochs=1)
default_hooks = dict(logger=dict(interval=1))
'''


def test_a_trained_classifier_starts_a_detector(tmp_path):
    """tools/train.py trains a classifier a few iterations; the detection config takes its
    checkpoint in init_cfg with no prefix: every backbone weight loads (focal kernels
    zero-padded from 3 to the detector's 9), the head and the final norm are reported as
    not used."""
    data = str(tmp_path / 'images')
    write_image_folders(data)
    config = tmp_path / 'classifier.py'
    config.write_text(textwrap.dedent(HANDOFF_CONFIG.format(root=data)))
    work_dir = tmp_path / 'work'
    run_checked([PYTHON, 'tools/train.py', str(config), '--work-dir', str(work_dir)])
    checkpoint = str(work_dir / 'epoch_1.pth')
    trained = torch.load(checkpoint, map_location='cpu', weights_only=False)['state_dict']
    assert {k.split('.')[0] for k in trained} == {'backbone', 'head'}

    from mmengine.config import Config
    from mmdet.registry import MODELS as DET_MODELS
    cfg = Config.fromfile(osp.join(ROOT, 'configs/detection/demo_mask_rcnn_focalnet.py'))
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=checkpoint)
    with DefaultScope.overwrite_default_scope('mmdet'):
        detector = DET_MODELS.build(cfg.model)
        detector.init_weights()
    backbone = detector.backbone.state_dict()
    for key, value in trained.items():
        if not key.startswith('backbone.') or key.startswith('backbone.norm.'):
            continue
        got = backbone[key[len('backbone.'):]]
        if got.shape != value.shape:  # a focal kernel, zero-padded at the centre
            pad = (got.shape[-1] - value.shape[-1]) // 2
            got = got[..., pad:pad + value.shape[-1], pad:pad + value.shape[-1]]
        torch.testing.assert_close(got, value, msg=key)
    # what init_weights reported, again: the head and the final norm not used
    report = load_pretrained(detector.backbone, checkpoint)
    lines = '\n'.join(report.lines())
    assert re.search(r"dropped head\.\* \(2 keys\) \(outside 'backbone\.'\)", lines)
    assert 'dropped norm.weight (classification only)' in lines
    assert 'zero-padded at the centre' in lines
    assert not report.unexpected and all(re.match(r'norm\d\.', k) for k in report.missing)


def test_the_converter_writes_a_whole_classifier_for_a_classification_config(tmp_path):
    """tools/model_converters/convert_focalnet.py with a classification config: the
    authors' FocalNet-T/16 file (Hugging Face's layout here) becomes the classifier's own
    checkpoint, which loads strictly and gives the reference's logits; a file of another
    class count is refused naming the head."""
    config = osp.join(ROOT, 'configs/classification/focalnet-t-iso-p16_8xb128_in1k.py')
    arch = dict(embed_dims=192, depths=(12, ), patch_size=16, focal_levels=3,
                focal_windows=3)
    sd = authors_weights(arch, 1000)
    src, dst = tmp_path / 'hf.pth', tmp_path / 'converted.pth'
    torch.save(to_huggingface(sd), src)
    converter = 'tools/model_converters/convert_focalnet.py'
    run_checked([PYTHON, converter, str(src), str(dst), '--config', config])
    model = classifier(dict(type='FocalNet', final_norm=True, **arch), 1000, 192)
    model.load_state_dict(torch.load(dst, weights_only=True)['state_dict'], strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference_logits(sd, arch, x), rtol=1e-5,
                                   atol=1e-5)
    sd.update({'head.weight': sd['head.weight'][:10], 'head.bias': sd['head.bias'][:10]})
    torch.save({'model': sd}, src)
    result = subprocess.run([PYTHON, converter, str(src), str(dst), '--config', config],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 1
    assert re.search(r'shape: head\.fc\.weight \(10, 192\) in the checkpoint, '
                     r'\(1000, 192\) in the model', result.stderr), result.stderr
