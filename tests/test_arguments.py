"""Bad constructor arguments and bad inputs of both backbones: one of our errors, naming
the argument, the value and what is allowed, before any computation."""
import ast
import pathlib

import pytest
import torch

from mmfocal.models.backbones.focal_transformer import FocalTransformer
from mmfocal.models.backbones.focalnet import FocalNet

FOCALNET = dict(embed_dims=16, depths=(1, 1, 1, 1), focal_windows=3)
FOCAL_T = dict(embed_dims=32, depths=(1, 1, 1, 1), num_heads=(2, 2, 2, 4), drop_path_rate=0.)
BUILDERS = {'FocalNet': (FocalNet, FOCALNET), 'FocalTransformer': (FocalTransformer, FOCAL_T)}

# (argument, bad value, error, words of the message), for both backbones
SHARED = [
    ('depths', (), ValueError, 'depths must be a non-empty list of positive ints'),
    ('depths', 2, ValueError, 'depths must be a non-empty list .* got 2'),
    ('depths', (2, 0, 2, 2), ValueError, 'depths'),
    ('depths', '2222', ValueError, 'depths'),
    ('patch_size', 0, ValueError, 'patch_size must be a positive int, got 0'),
    ('patch_size', 4.0, ValueError, 'patch_size must be a positive int, got 4.0'),
    ('in_channels', True, ValueError, 'in_channels must be a positive int, got True'),
    ('embed_dims', -8, ValueError, 'embed_dims must be a positive int, got -8'),
    ('mlp_ratio', 0, ValueError, 'mlp_ratio must be a positive finite number, got 0'),
    ('mlp_ratio', float('nan'), ValueError, 'mlp_ratio must be a positive finite number'),
    ('layerscale_value', '1e-4', ValueError, 'layerscale_value must be a positive'),
    ('drop_rate', -0.1, ValueError, r'drop_rate must be a number in \[0, 1\), got -0.1'),
    ('drop_path_rate', 1.0, ValueError, r'drop_path_rate must be a number in \[0, 1\)'),
    ('out_indices', (0, 4), ValueError, 'out_indices must be distinct stages in 0..3 '
                                        r'\(the model has 4 stages'),
    ('out_indices', (1, 1), ValueError, 'out_indices must be distinct'),
    ('out_indices', (), ValueError, 'out_indices'),
    ('out_indices', 3, ValueError, 'out_indices .* got 3'),
    ('frozen_stages', 5, ValueError, r'frozen_stages must be an int in -1..4 \(the model has '
                                     r'4 stages\), got 5'),
    ('final_norm', 1, TypeError, 'final_norm must be True or False, got 1'),
    ('frozen_stages', 1.5, ValueError, 'frozen_stages'),
    ('norm_cfg', dict(type='BN'), ValueError, "norm_cfg must be dict\\(type='LN'"),
    ('use_conv_embed', 'yes', TypeError, "use_conv_embed must be True or False, got 'yes'"),
    ('use_layerscale', 1, TypeError, 'use_layerscale must be True or False, got 1'),
    ('with_cp', None, TypeError, 'with_cp must be True or False, got None'),
    ('init_cfg', dict(type='Pretrained'), ValueError, 'needs a checkpoint path'),
    ('init_cfg', dict(type='Pretrained', checkpoint='a.pth', map_loc='cpu'), ValueError,
     r"unknown keys \['map_loc'\]"),
    ('init_cfg', [dict(type='Pretrained', checkpoint='a.pth')], ValueError, 'alone'),
]


@pytest.mark.parametrize('backbone', list(BUILDERS))
@pytest.mark.parametrize('name, value, error, match', SHARED)
def test_bad_shared_argument(backbone, name, value, error, match):
    cls, base = BUILDERS[backbone]
    with pytest.raises(error, match=match):
        cls(**{**base, name: value})


@pytest.mark.parametrize('backbone', list(BUILDERS))
@pytest.mark.parametrize('kwargs, match', [
    (dict(depths=(1, 1), out_indices=(2, )), r'out_indices must be distinct stages in 0..1 '
                                             r'\(the model has 2 stages'),
    (dict(depths=(1, 1, 1), frozen_stages=4), r'frozen_stages must be an int in -1..3'),
    (dict(final_norm=True, out_indices=(3, )), 'final_norm=True .* leave out_indices at None'),
])
def test_stage_count_bounds_the_stage_arguments(backbone, kwargs, match):
    """The number of stages is the length of depths: out_indices and frozen_stages are
    checked against it, and a classifier's trunk (final_norm) takes no out_indices."""
    cls, base = BUILDERS[backbone]
    per_stage = {'num_heads': (2, 2, 2, 4)[:len(kwargs.get('depths', base['depths']))]}
    extra = per_stage if backbone == 'FocalTransformer' else {}
    with pytest.raises(ValueError, match=match):
        cls(**{**base, **extra, **kwargs})


@pytest.mark.parametrize('name, value, error, match', [
    ('focal_windows', 4, ValueError, r'focal_windows .* must be odd.*got \(4, 4, 4, 4\)'),
    ('focal_windows', (9, 9, 8, 9), ValueError, 'must be odd'),
    ('focal_windows', 0, ValueError, 'focal_windows must be an int >= 1'),
    ('focal_levels', 0, ValueError, 'focal_levels must be an int >= 1'),
    ('focal_levels', (2, 2, 2), ValueError, 'focal_levels'),
    ('use_postln', 'no', TypeError, 'use_postln must be True or False'),
    ('use_postln_in_modulation', 0, TypeError, 'use_postln_in_modulation'),
    ('normalize_modulator', None, TypeError, 'normalize_modulator'),
])
def test_bad_focalnet_argument(name, value, error, match):
    with pytest.raises(error, match=match):
        FocalNet(**{**FOCALNET, name: value})


@pytest.mark.parametrize('name, value, error, match', [
    ('num_heads', (2, 2, 3, 4), ValueError, r'stage 2 has 128 channels, not divisible by '
                                            r'num_heads\[2\] = 3'),
    ('num_heads', 0, ValueError, 'num_heads must be an int >= 1'),
    ('window_size', 0, ValueError, 'window_size must be a positive int, got 0'),
    ('expand_size', 7, ValueError, r'expand_size must be in \[0, window_size = 7\)'),
    ('expand_size', -1, ValueError, 'expand_size must be an int >= 0'),
    ('expand_size', (3, 3, 3), ValueError, 'expand_size'),
    ('focal_levels', 0, ValueError, 'focal_levels must be an int >= 1'),
    ('focal_levels', (2, 2, 2, 2, 2), ValueError, 'focal_levels'),
    ('focal_windows', (15, 13, 9, 8), ValueError, 'odd'),
    ('pool_method', 'avg', ValueError, r"pool_method must be one of .*got 'avg'"),
    ('qk_scale', -1., ValueError, 'qk_scale must be a positive finite number, got -1.0'),
    ('attn_drop_rate', 1, ValueError, r'attn_drop_rate must be a number in \[0, 1\)'),
    ('pretrain_img_size', (224, ), ValueError, 'pretrain_img_size'),
    ('pretrain_img_size', True, ValueError, r'pretrain_img_size .* got True'),
    ('pretrain_img_size', '224', ValueError, 'pretrain_img_size'),
    ('qkv_bias', 'true', TypeError, 'qkv_bias must be True or False'),
    ('wrap_neighbors', 1, TypeError, 'wrap_neighbors must be True or False'),
])
def test_bad_focal_transformer_argument(name, value, error, match):
    with pytest.raises(error, match=match):
        FocalTransformer(**{**FOCAL_T, name: value})


def test_focal_transformer_takes_per_stage_levels_and_expand_sizes():
    """The authors' classifier spelling (one value per stage) builds the same network as one
    int; differing values change exactly the stages they name."""
    torch.manual_seed(0)
    one = FocalTransformer(**FOCAL_T, focal_levels=2, expand_size=3).eval()
    torch.manual_seed(0)
    per_stage = FocalTransformer(**FOCAL_T, focal_levels=[2, 2, 2, 2],
                                 expand_size=[3, 3, 3, 3]).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(one(x), per_stage(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    mixed = FocalTransformer(**FOCAL_T, focal_levels=(2, 2, 1, 3), expand_size=(3, 0, 3, 2))
    attn = [mixed.layers[i].blocks[0].attn for i in range(4)]
    assert [len(a.relative_position_bias_table_to_windows) for a in attn] == [1, 1, 0, 2]
    assert [a.relative_position_bias_table_to_neighbors is None for a in attn] == [
        False, True, False, False]
    assert attn[3].relative_position_bias_table_to_neighbors.shape[-1] == 4 * (49 - 25)
    assert [o.shape[1] for o in mixed(x)] == [32, 64, 128, 256]


@pytest.mark.parametrize('backbone', list(BUILDERS))
@pytest.mark.parametrize('x, error, match', [
    ([[0.0]], TypeError, r'expects a floating-point \(B, 3, H, W\) tensor, got list'),
    (torch.zeros(1, 3, 16, 16, dtype=torch.uint8), TypeError, r'got dtype torch.uint8'),
    (torch.zeros(1, 3, 16, 16, dtype=torch.long), TypeError, 'got dtype torch.int64'),
    (torch.zeros(3, 16, 16), ValueError, r'got shape \(3, 16, 16\)'),
    (torch.zeros(1, 1, 3, 16, 16), ValueError, r'got shape \(1, 1, 3, 16, 16\)'),
    (torch.zeros(1, 1, 16, 16), ValueError, r'\(B, 3, H, W\) tensor with B, H, W >= 1, got '
                                            r'shape \(1, 1, 16, 16\)'),
    (torch.zeros(1, 3, 0, 16), ValueError, r'got shape \(1, 3, 0, 16\)'),
    (torch.zeros(0, 3, 16, 16), ValueError, r'got shape \(0, 3, 16, 16\)'),
])
def test_bad_input_is_refused_before_any_convolution(backbone, x, error, match, monkeypatch):
    cls, base = BUILDERS[backbone]
    model = cls(**base)

    def must_not_run(*args):
        raise AssertionError('the stem ran on a bad input')
    monkeypatch.setattr(model.patch_embed, 'forward', must_not_run)
    with pytest.raises(error, match=match):
        model(x)


@pytest.mark.parametrize('backbone', list(BUILDERS))
def test_smallest_input_and_other_channel_counts_work(backbone):
    cls, base = BUILDERS[backbone]
    model = cls(**base, in_channels=1).eval()
    with torch.no_grad():
        outs = model(torch.randn(2, 1, 1, 1, dtype=torch.float64).float())
    assert [tuple(o.shape[-2:]) for o in outs] == [(1, 1)] * 4


def constructor_calls(tree):
    """(line, class name, positional arguments) of every call of a capitalised name."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, 'id', '')
            if name[:1].isupper():
                yield node.lineno, name, len(node.args)


def test_constructors_are_called_by_keyword():
    """No constructor call in the package passes more than three positional arguments, so
    that sibling signatures cannot be swapped silently (the blocks' are keyword-only)."""
    assert list(constructor_calls(ast.parse('Block(a, b, c, d)\nLinear(a, b, c=1)'))) == [
        (1, 'Block', 4), (2, 'Linear', 2)]
    package = pathlib.Path(__file__).parents[1] / 'mmfocal'
    crowded = [f'{path.relative_to(package)}:{line} {name}'
               for path in sorted(package.rglob('*.py'))
               for line, name, count in constructor_calls(ast.parse(path.read_text()))
               if count > 3]
    assert not crowded, crowded
