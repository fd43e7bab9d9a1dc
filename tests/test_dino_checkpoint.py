"""FocalNet-DINO checkpoints (DINO codebase layout) converted to mmdet 3 DINO weights.

The source checkpoints are written here with the DINO codebase's key names and shapes
(FocalNet/FocalNet-DINO, 5-scale FocalNet-L fl4: ``backbone.0``, ``input_proj``,
``transformer.*``, shared ``class_embed`` / ``bbox_embed`` stored again under
``transformer.decoder``, ``label_enc`` with 92 rows) and random values; each converted
tensor is traced back to its source through a map written here in the other direction.
"""
import argparse
import re
import sys
import textwrap

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

from mmfocal.models.checkpoint import CheckpointError
from mmfocal.models.dino_checkpoint import convert_dino, convert_dino_file

from _helpers import ROOT
from test_configs import data_samples_for

sys.path.insert(0, f'{ROOT}/tools/model_converters')
import convert_focalnet_dino  # noqa: E402

CONFIG = f'{ROOT}/configs/detection/dino_5scale_focalnet_l_fl4_1x.py'
C, FFN, QUERIES, HEADS, POINTS, LAYERS = 256, 2048, 900, 8, 4, 6
# COCO's 80 category ids (not contiguous), written out here, not taken from the converter.
COCO_IDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
            24, 25, 27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47,
            48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70,
            72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90]


def small_config(tmp_path, classes=80):
    """The fl4 5-scale config with one block per stage (the keys the converter sees are
    the same at any depth) and no pretrained backbone."""
    path = tmp_path / 'dino_small.py'
    path.write_text(textwrap.dedent(f"""
        _base_ = {CONFIG!r}
        model = dict(backbone=dict(depths=(1, 1, 1, 1), init_cfg=None),
                     bbox_head=dict(num_classes={classes}))
    """))
    return str(path)


def build(config):
    cfg = Config.fromfile(config)
    init_default_scope('mmdet')
    return MODELS.build(cfg.model)


def dino_codebase_state(backbone: dict, levels=5, classes=91, seed=0):
    """A DINO-codebase state dict: every key and shape of FocalNet-DINO's model."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g)

    def linear(prefix, out, inp):
        return {f'{prefix}.weight': r(out, inp), f'{prefix}.bias': r(out)}

    def norm(prefix, dims=C):
        return {f'{prefix}.weight': r(dims), f'{prefix}.bias': r(dims)}

    def msda(prefix):
        return {**linear(f'{prefix}.sampling_offsets', HEADS * levels * POINTS * 2, C),
                **linear(f'{prefix}.attention_weights', HEADS * levels * POINTS, C),
                **linear(f'{prefix}.value_proj', C, C), **linear(f'{prefix}.output_proj', C, C)}

    def mlp(prefix, out=4):
        return {**linear(f'{prefix}.layers.0', C, C), **linear(f'{prefix}.layers.1', C, C),
                **linear(f'{prefix}.layers.2', out, C)}

    sd = {f'backbone.0.{k}': v + r(*v.shape) for k, v in backbone.items()}
    channels = [backbone[f'norm{i}.weight'].shape[0] for i in range(4)]
    for lvl, dims in enumerate(channels):
        sd.update({f'input_proj.{lvl}.0.weight': r(C, dims, 1, 1), f'input_proj.{lvl}.0.bias': r(C),
                   **norm(f'input_proj.{lvl}.1')})
    sd.update({'input_proj.4.0.weight': r(C, channels[-1], 3, 3), 'input_proj.4.0.bias': r(C),
               **norm('input_proj.4.1')})
    t = 'transformer'
    sd[f'{t}.level_embed'] = r(levels, C)
    for n in range(LAYERS):
        e = f'{t}.encoder.layers.{n}'
        sd.update({**msda(f'{e}.self_attn'), **norm(f'{e}.norm1'), **norm(f'{e}.norm2'),
                   **linear(f'{e}.linear1', FFN, C), **linear(f'{e}.linear2', C, FFN)})
        d = f'{t}.decoder.layers.{n}'
        sd.update({**msda(f'{d}.cross_attn'), f'{d}.self_attn.in_proj_weight': r(3 * C, C),
                   f'{d}.self_attn.in_proj_bias': r(3 * C),
                   **linear(f'{d}.self_attn.out_proj', C, C),
                   **norm(f'{d}.norm1'), **norm(f'{d}.norm2'), **norm(f'{d}.norm3'),
                   **linear(f'{d}.linear1', FFN, C), **linear(f'{d}.linear2', C, FFN)})
    sd.update({**norm(f'{t}.decoder.norm'),
               **linear(f'{t}.decoder.ref_point_head.layers.0', C, 2 * C),
               **linear(f'{t}.decoder.ref_point_head.layers.1', C, C),
               f'{t}.tgt_embed.weight': r(QUERIES, C), **linear(f'{t}.enc_output', C, C),
               **norm(f'{t}.enc_output_norm'), **linear(f'{t}.enc_out_class_embed', classes, C),
               **mlp(f'{t}.enc_out_bbox_embed'), 'label_enc.weight': r(classes + 1, C)})
    # one class head and one box head, shared by the six decoder layers and referenced
    # again by the decoder: the same tensors under 2 x 6 names each
    cls_head, box_head = linear('x', classes, C), mlp('x')
    for k in range(LAYERS):
        for owner in ('', f'{t}.decoder.'):
            sd.update({f'{owner}class_embed.{k}.{p}': v for p, v in
                       (('weight', cls_head['x.weight']), ('bias', cls_head['x.bias']))})
            sd.update({f'{owner}bbox_embed.{k}.{name[2:]}': v for name, v in box_head.items()})
    return sd


def source_key(key: str) -> str:
    """The DINO-codebase key an mmdet DINO key comes from (the table, read backwards)."""
    rules = [
        (r'backbone\.(.+)', r'backbone.0.\1'),
        (r'neck\.convs\.(\d)\.conv\.(.+)', r'input_proj.\1.0.\2'),
        (r'neck\.convs\.(\d)\.gn\.(.+)', r'input_proj.\1.1.\2'),
        (r'neck\.extra_convs\.0\.conv\.(.+)', r'input_proj.4.0.\1'),
        (r'neck\.extra_convs\.0\.gn\.(.+)', r'input_proj.4.1.\1'),
        (r'level_embed', 'transformer.level_embed'),
        (r'(en|de)coder\.layers\.(\d)\.ffn\.layers\.0\.0\.(.+)',
         r'transformer.\1coder.layers.\2.linear1.\3'),
        (r'(en|de)coder\.layers\.(\d)\.ffn\.layers\.1\.(.+)',
         r'transformer.\1coder.layers.\2.linear2.\3'),
        (r'encoder\.layers\.(\d)\.norms\.0\.(.+)', r'transformer.encoder.layers.\1.norm1.\2'),
        (r'encoder\.layers\.(\d)\.norms\.1\.(.+)', r'transformer.encoder.layers.\1.norm2.\2'),
        (r'decoder\.layers\.(\d)\.norms\.0\.(.+)', r'transformer.decoder.layers.\1.norm2.\2'),
        (r'decoder\.layers\.(\d)\.norms\.1\.(.+)', r'transformer.decoder.layers.\1.norm1.\2'),
        (r'decoder\.layers\.(\d)\.norms\.2\.(.+)', r'transformer.decoder.layers.\1.norm3.\2'),
        (r'decoder\.layers\.(\d)\.self_attn\.attn\.(.+)',
         r'transformer.decoder.layers.\1.self_attn.\2'),
        (r'((en|de)coder\..+)', r'transformer.\1'),
        (r'query_embedding\.weight', 'transformer.tgt_embed.weight'),
        (r'memory_trans_fc\.(.+)', r'transformer.enc_output.\1'),
        (r'memory_trans_norm\.(.+)', r'transformer.enc_output_norm.\1'),
        (r'bbox_head\.cls_branches\.6\.(.+)', r'transformer.enc_out_class_embed.\1'),
        (r'bbox_head\.cls_branches\.(\d)\.(.+)', r'class_embed.\1.\2'),
        (r'bbox_head\.reg_branches\.6\.(\d)\.(.+)', 'transformer.enc_out_bbox_embed.layers.{}.\\2'),
        (r'bbox_head\.reg_branches\.(\d)\.(\d)\.(.+)', r'bbox_embed.\1.layers.{}.\3'),
        (r'dn_query_generator\.label_embedding\.weight', 'label_enc.weight'),
    ]
    for pattern, repl in rules:
        m = re.fullmatch(pattern, key)
        if m:
            out = m.expand(repl)
            if '{}' in out:  # Sequential(Linear, ReLU, Linear, ReLU, Linear): 2i -> i
                out = out.format(int(m.group(m.re.groups - 1)) // 2)
            return out
    raise AssertionError(f'no rule for {key}')


@pytest.fixture(scope='module')
def small(tmp_path_factory):
    """(config path, model, DINO-codebase state dict with the model's backbone keys)."""
    config = small_config(tmp_path_factory.mktemp('cfg'))
    model = build(config)
    return config, model, dino_codebase_state(model.backbone.state_dict())


def test_every_key_lands_where_the_table_says(small):
    _, model, src = small
    out = convert_dino(src)
    target = model.state_dict()
    assert sorted(out) == sorted(target)  # none missing, none left over
    for key, value in out.items():
        assert value.shape == target[key].shape, key
        expected = src[source_key(key)]
        if key.startswith(('bbox_head.cls_branches.', 'dn_query_generator.')):
            expected = expected[COCO_IDS]  # rows by category id -> rows by label
        assert torch.equal(value, expected), key
    # the 80 labels: person is category 1, stop sign 13, toothbrush 90
    cls = out['bbox_head.cls_branches.3.weight']
    assert cls.shape == (80, C)
    for label, category in ((0, 1), (11, 13), (79, 90)):
        assert torch.equal(cls[label], src['class_embed.3.weight'][category])
    assert torch.equal(out['dn_query_generator.label_embedding.weight'][79],
                       src['label_enc.weight'][90])
    # the encoder's heads are their own, not the decoder's shared ones
    assert not torch.equal(out['bbox_head.cls_branches.6.weight'], cls)


def test_converted_detector_predicts(small, tmp_path):
    config, model, src = small
    path = tmp_path / 'dino_codebase.pth'
    # as the DINO codebase's main.py saves it: the command line and the training state
    args = argparse.Namespace(backbone='focalnet_L_384_22k_fl4', lr_drop_list=[33, 45],
                              focal_levels=4, coco_path=None, use_ema=False)
    torch.save({'model': src, 'optimizer': {'state': {}, 'param_groups': [{'lr': 1e-4}]},
                'lr_scheduler': {'step_size': 11, 'last_epoch': 11}, 'epoch': 11,
                'args': args}, path)
    state = convert_dino_file(str(path), target=model.state_dict())
    model.load_state_dict(state, strict=True)
    model.eval()
    with torch.no_grad():
        results = model(torch.rand(1, 3, 128, 128), data_samples_for('mmdet', (128, 128)),
                        mode='predict')
    pred = results[0].pred_instances
    assert pred.bboxes.shape == (300, 4) and pred.scores.shape == (300, )
    assert int(pred.labels.max()) < 80 and torch.isfinite(pred.bboxes).all()
    # the neck's conv biases are loaded (mmdet drops them next to GN unless bias=True)
    assert torch.equal(model.neck.convs[0].conv.bias, src['input_proj.0.0.bias'])


def test_command_line_checks_against_config(small, tmp_path):
    config, _, src = small
    path, dst = tmp_path / 'src.pth', tmp_path / 'dst.pth'
    torch.save({'model': src}, path)
    assert convert_focalnet_dino.main([str(path), str(dst), '--config', config]) == 0
    state = torch.load(dst, weights_only=True)['state_dict']
    assert torch.equal(state['query_embedding.weight'], src['transformer.tgt_embed.weight'])
    # the same checkpoint does not fit a 4-scale model: the error names the keys
    other = tmp_path / 'four.py'
    other.write_text(f"_base_ = {config!r}\nmodel = dict(num_feature_levels=4, "
                     "neck=dict(num_outs=4))\n")
    assert convert_focalnet_dino.main([str(path), str(dst), '--config', str(other)]) == 1


def test_unmapped_key_is_refused(small):
    src = dict(small[2])
    src['transformer.refpoint_embed.weight'] = torch.zeros(900, 4)
    with pytest.raises(CheckpointError, match=r'1 keys .*\n  transformer\.refpoint_embed'):
        convert_dino(src)


def test_decoder_copy_of_heads_must_be_the_shared_head(small):
    src = dict(small[2])
    src['transformer.decoder.class_embed.2.bias'] = torch.zeros(91)
    with pytest.raises(CheckpointError, match='class_embed.2.bias is not a copy'):
        convert_dino(src)


def test_class_rows(small):
    src = dict(small[2])
    # Objects365: 366 class rows, not indexed by COCO category id
    shared = {'weight': torch.randn(366, C), 'bias': torch.randn(366)}
    for key in [k for k in src if re.match(r'(transformer\.decoder\.)?class_embed\.', k)]:
        src[key] = shared[key.rsplit('.', 1)[1]]
    for p in ('weight', 'bias'):
        src[f'transformer.enc_out_class_embed.{p}'] = torch.randn_like(shared[p])
    src['label_enc.weight'] = torch.randn(367, C)
    with pytest.raises(CheckpointError, match="366 class rows; class_rows='coco'"):
        convert_dino(src)
    out = convert_dino(src, class_rows='all')
    assert torch.equal(out['bbox_head.cls_branches.6.bias'],
                       src['transformer.enc_out_class_embed.bias'])
    assert torch.equal(out['dn_query_generator.label_embedding.weight'],
                       src['label_enc.weight'][:366])
    with pytest.raises(CheckpointError, match="class_rows must be one of"):
        convert_dino(src, class_rows='o365')


@pytest.mark.slow
def test_full_size_checkpoint_converts_into_the_config(tmp_path):
    """FocalNet-L fl4 at full depth (the released model's 869 keys, 504 of the backbone):
    the command line checks it against the config itself, and the detector predicts."""
    cfg = Config.fromfile(CONFIG)
    cfg.model.backbone.init_cfg = None
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)
    src = dino_codebase_state(model.backbone.state_dict())
    assert len(src) == 869 and sum(k.startswith('backbone.0.') for k in src) == 504
    path, dst = tmp_path / 'src.pth', tmp_path / 'dst.pth'
    torch.save({'model': src}, path)
    del src
    assert convert_focalnet_dino.main([str(path), str(dst), '--config', CONFIG]) == 0
    model.load_state_dict(torch.load(dst, weights_only=True)['state_dict'], strict=True)
    model.eval()
    with torch.no_grad():
        results = model(torch.rand(1, 3, 128, 128), data_samples_for('mmdet', (128, 128)),
                        mode='predict')
    assert results[0].pred_instances.bboxes.shape == (300, 4)
