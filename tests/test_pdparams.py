"""PaddleViT's Focal Transformer ports (``.pdparams``): read without running any of their
code, loaded into FocalTransformer exactly, converted to mmfocal's layout.

The files are written here as ``paddle.save`` writes a state dict: a pickle (protocol 4, or
2 with the large arrays cut into ``@@.i`` slices) of the structured names and numpy arrays,
every ``nn.Linear`` weight (in, out), the position-bias tables as the authors', the index
buffers, the classifier's ``norm``/``head`` and the ``StructuredToParameterName@@`` table.
"""
import copy
import math
import os
import os.path as osp
import pickle
import re
import subprocess
import sys
from collections import OrderedDict
from typing import List, NamedTuple

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmfocal.models.backbones.focal_transformer import FocalTransformer
from mmfocal.models.backbones.focalnet import FocalNet
from mmfocal.models.checkpoint import (FORMAT_MARK, PADDLE, CheckpointError, adapt_state_dict,
                                       check_complete, detect_layout, load_pretrained,
                                       read_checkpoint, rules_of, unwrap)
from mmfocal.models.pdparams import NAME_TABLE, SLICE_TABLE, PdparamsError, read_pdparams

from _helpers import PYTHON, ROOT

sys.path.insert(0, osp.join(ROOT, 'tools', 'model_converters'))

VARIANTS = {
    'T': dict(embed_dims=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24)),
    'S': dict(embed_dims=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24)),
    'B': dict(embed_dims=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32)),
}
# the six ports: variant, conv patch embedding, parameters in millions (the authors' README)
PORTS = [('T', False, 28.9), ('T', True, 30.8), ('S', False, 51.1), ('S', True, 53.1),
         ('B', False, 89.8), ('B', True, 93.3)]
IMAGENET_WINDOWS = (7, 5, 3, 1)
DETECTION_WINDOWS = (15, 13, 9, 7)
# the ports' outputs are checked with fewer blocks (stage 2 has 6 or 18); the ports' keys
# at full depth by test_full_depth_ports_fit_their_variants
FORWARD_DEPTHS = (1, 1, 2, 1)
CLASSES = 10


# --------------------------------------------------------------------- writing ports


def port_shapes(embed_dims, depths, num_heads, conv, classes=1000):
    """key -> (shape, dtype) of PaddleViT's port of the authors' Focal Transformer, from
    the facts of the ports alone (the authors' keys; Paddle's Linear weights (in, out);
    bias tables (169, nH), (1, nH, 49, 132) in stages 0-2, (nH, (6 + s_r)^2); the index
    buffers; conv stem 7x7 / downsampling 3x3, else 4x4 / 2x2)."""
    shapes = {}

    def add(key, *shape, dtype='float32'):
        shapes[key] = (shape, dtype)

    stem, c = (7 if conv else 4), embed_dims
    add('patch_embed.proj.weight', c, 3, stem, stem)
    for name in ('patch_embed.proj.bias', 'patch_embed.norm.weight', 'patch_embed.norm.bias'):
        add(name, c)
    for i, (depth, heads) in enumerate(zip(depths, num_heads)):
        dims, window = c * 2**i, IMAGENET_WINDOWS[i]
        for j in range(depth):
            p = f'layers.{i}.blocks.{j}.'
            for name in ('norm1.weight', 'norm1.bias', 'norm2.weight', 'norm2.bias',
                         'attn.proj.bias', 'mlp.fc2.bias'):
                add(p + name, dims)
            add(p + 'attn.qkv.weight', dims, 3 * dims)
            add(p + 'attn.qkv.bias', 3 * dims)
            add(p + 'attn.proj.weight', dims, dims)
            add(p + 'attn.relative_position_bias_table', 169, heads)
            add(p + 'attn.relative_position_index', 49, 49, dtype='int64')
            if i < 3:  # stage 3 is one 7x7 window at 224: no surrounding tokens
                add(p + 'attn.relative_position_bias_table_to_neighbors', 1, heads, 49, 132)
                add(p + 'attn.valid_ind_rolled', 132, dtype='int64')
            add(p + 'attn.relative_position_bias_table_to_windows.0', heads, (6 + window)**2)
            add(p + 'attn.relative_position_index_0', 49, window**2, dtype='int64')
            add(p + 'pool_layers.0.weight', 49, 1)
            add(p + 'pool_layers.0.bias', 1)
            add(p + 'mlp.fc1.weight', dims, 4 * dims)
            add(p + 'mlp.fc1.bias', 4 * dims)
            add(p + 'mlp.fc2.weight', 4 * dims, dims)
        if i < 3:
            k = 3 if conv else 2
            add(f'layers.{i}.downsample.proj.weight', 2 * dims, dims, k, k)
            for name in ('proj.bias', 'norm.weight', 'norm.bias'):
                add(f'layers.{i}.downsample.{name}', 2 * dims)
    add('norm.weight', 8 * c)
    add('norm.bias', 8 * c)
    add('head.weight', 8 * c, classes)
    add('head.bias', classes)
    return shapes


def not_in_port(key: str) -> bool:
    """mmfocal's tensors that the ports lack: the dense output norms, stage 3's table."""
    return re.match(r'norm\d', key) is not None or \
        key.startswith('layers.3.') and key.endswith('_to_neighbors')


def source_model(variant, conv, seed=0, **kwargs):
    """The model a port is written from: the ImageNet structure with random weights."""
    torch.manual_seed(seed)
    model = FocalTransformer(**{**VARIANTS[variant], 'depths': FORWARD_DEPTHS},
                             use_conv_embed=conv, focal_windows=IMAGENET_WINDOWS,
                             wrap_neighbors=True, drop_path_rate=0., **kwargs).eval()
    with torch.no_grad():  # Linear weights, convolutions and bias tables are random already
        for key, param in model.named_parameters():
            if not not_in_port(key) and (param.dim() == 1 or 'pool_layers' in key):
                param.add_(0.05 * torch.randn_like(param))
    return model


def port_of(model: FocalTransformer, classes: int = CLASSES) -> dict:
    """``model`` as PaddleViT's ``paddle_model.state_dict()`` holds it, as numpy arrays."""
    state = {}
    for key, value in model.state_dict().items():
        if not_in_port(key):
            continue
        array = value.numpy()
        state[key] = array.T.copy() if key.endswith('.weight') and array.ndim == 2 else \
            array.copy()
    for key in list(state):
        match = re.match(r'(layers\.(\d)\.blocks\.\d+\.attn\.)qkv\.weight', key)
        if match:
            prefix, window = match.group(1), IMAGENET_WINDOWS[int(match.group(2))]
            state[prefix + 'relative_position_index'] = np.arange(49 * 49).reshape(49, 49)
            state[prefix + 'relative_position_index_0'] = np.zeros((49, window**2), np.int64)
            if match.group(2) != '3':
                state[prefix + 'valid_ind_rolled'] = np.arange(132)
    width = state['layers.3.blocks.0.norm1.weight'].shape[0]
    rng = np.random.default_rng(0)
    state['norm.weight'] = rng.standard_normal(width).astype(np.float32)
    state['norm.bias'] = np.zeros(width, np.float32)
    state['head.weight'] = rng.standard_normal((width, classes)).astype(np.float32)
    state['head.bias'] = np.zeros(classes, np.float32)
    return state


def paddle_save(state: dict, path, protocol: int = 4, max_elements: int = None) -> str:
    """Write ``state`` as ``paddle.save`` does: the name table; with protocol 2 or 3 every
    array of more than ``max_elements`` values (Paddle: (2**30 - 1) bytes) flattened into
    ``@@.i`` slices that ``UnpackBigParamInfor@@`` lists."""
    saved = dict(state)
    saved[NAME_TABLE] = {key: f'create_parameter_{i}.w_0' for i, key in enumerate(state)}
    if 1 < protocol < 4:
        table = {}
        for key, value in state.items():
            limit = max_elements or (2**30 - 1) // value.dtype.itemsize
            if value.size > limit:
                flat = saved.pop(key).flatten()
                parts = [f'{key}@@.{i}' for i in range(math.ceil(value.size / limit))]
                saved.update({part: flat[i * limit:(i + 1) * limit]
                              for i, part in enumerate(parts)})
                table[key] = {'OriginShape': value.shape, 'slices': parts}
        if table:
            saved[SLICE_TABLE] = table
    with open(path, 'wb') as f:
        pickle.dump(saved, f, protocol=protocol)
    return str(path)


class Port(NamedTuple):
    source: FocalTransformer  # the model it was written from
    path: str
    shapes: dict  # key -> (shape, dtype) of what was written
    outputs: dict  # input size -> the source's outputs


@pytest.fixture(scope='module')
def ports(tmp_path_factory):
    """(variant, conv) -> :class:`Port`, written once by :func:`paddle_save` (protocol 4)."""
    made = {}

    def port(variant, conv) -> Port:
        if (variant, conv) not in made:
            source = source_model(variant, conv)
            state = port_of(source)
            name = f'focal_{variant}{"_useconv" * conv}.pdparams'
            path = paddle_save(state, tmp_path_factory.mktemp('ports') / name)
            made[variant, conv] = Port(source, path, {k: (v.shape, str(v.dtype))
                                                      for k, v in state.items()}, {})
        return made[variant, conv]

    return port


def blank_copy(source: FocalTransformer) -> FocalTransformer:
    """A copy of ``source`` to load its port into: NaN in every tensor the port holds (one
    that loading misses shows in the outputs), stage 3's surrounding-token table drawn
    anew, the output norms as initialised."""
    model = copy.deepcopy(source)
    with torch.no_grad():
        for key, param in model.named_parameters():
            if not not_in_port(key):
                param.fill_(float('nan'))
            elif key.endswith('_to_neighbors'):
                param.normal_()
    return model


def meta_model(monkeypatch, cls=FocalTransformer, **cfg):
    """A model built on the meta device (shapes without memory), for the checks that end
    before the loading."""
    linspace = torch.linspace  # the drop-path rates are Python floats: computed on the CPU
    monkeypatch.setattr(torch, 'linspace',
                        lambda *a, **kw: linspace(*a, **{**kw, 'device': 'cpu'}))
    with torch.device('meta'):
        return cls(**cfg)


def outputs(model, size) -> List[torch.Tensor]:
    torch.manual_seed(1)
    with torch.no_grad():
        return model(torch.randn(1, 3, *size))


def outputs_equal(port: Port, model, size) -> bool:
    """Whether ``model`` computes the outputs of the model ``port`` was written from."""
    if size not in port.outputs:
        port.outputs[size] = outputs(port.source, size)
    return all(torch.equal(u, v) for u, v in zip(port.outputs[size], outputs(model, size)))


# ----------------------------------------------------------------------------- reader


@pytest.mark.parametrize('protocol', [4, 2])
def test_reader_joins_slices_and_drops_the_name_table(tmp_path, protocol):
    state = {'a.weight': np.arange(12, dtype=np.float32).reshape(3, 4),
             'a.index': np.arange(7, dtype=np.int64), 'b': np.full(1, 2.5)}
    path = paddle_save(state, tmp_path / 'x.pdparams', protocol, max_elements=5)
    with open(path, 'rb') as f:
        raw = pickle.load(f)  # written here: a plain load is safe
    assert NAME_TABLE in raw
    if protocol == 2:
        assert raw[SLICE_TABLE]['a.weight']['slices'] == [f'a.weight@@.{i}' for i in range(3)]
    read = read_pdparams(path)
    assert read.keys() == state.keys()
    for key, value in state.items():
        assert read[key].dtype == value.dtype and np.array_equal(read[key], value)


def test_reader_takes_numpy_1_and_2_module_names():
    """numpy 2 renamed numpy.core to numpy._core: files written by either read with
    either."""
    data = pickle.dumps({'w': np.arange(6, dtype=np.float32).reshape(2, 3)}, protocol=2)
    names = (b'numpy.core.multiarray', b'numpy._core.multiarray')
    written = next(n for n in names if n in data)
    for name in names:
        read = read_pdparams(data.replace(written, name), 'w.pdparams')
        assert np.array_equal(read['w'], np.arange(6, dtype=np.float32).reshape(2, 3))


def test_reader_takes_tensors_saved_inside_containers(tmp_path):
    """``paddle.save({'model': layer.state_dict(), ...})`` pickles each tensor as a
    (name, array) tuple in an OrderedDict."""
    inner = OrderedDict([('w', ('linear_0.w_0', np.ones((2, 3), np.float32)))])
    path = tmp_path / 'wrapped.pdparams'
    path.write_bytes(pickle.dumps({'model': inner, 'epoch': 3}, protocol=4))
    read = read_pdparams(path)
    assert read['epoch'] == 3 and np.array_equal(read['model']['w'], np.ones((2, 3)))
    checkpoint = read_checkpoint(str(path))
    assert FORMAT_MARK + PADDLE in checkpoint['model']


# ------------------------------------------------------------------- loading the ports


@pytest.mark.parametrize('variant, conv, millions', PORTS)
def test_full_depth_ports_fit_their_variants(monkeypatch, variant, conv, millions):
    """The ports' keys and shapes at full depth (with the authors' parameter counts) load
    into the variants' models (built without memory, on the meta device): at 224 nothing is
    adapted but the Linear weights, at the detection windows the pooled-window tables are
    up-sampled; the ports lack only stage 3's surrounding-token tables and the dense
    output norms."""
    shapes = port_shapes(**VARIANTS[variant], conv=conv)
    params = sum(math.prod(s) for s, dtype in shapes.values() if dtype == 'float32')
    assert round(params / 1e6, 1) == millions
    port = {k: torch.empty(s, dtype=getattr(torch, dtype), device='meta')
            for k, (s, dtype) in shapes.items()}
    port[FORMAT_MARK + PADDLE] = torch.empty(0, device='meta')
    for windows in (IMAGENET_WINDOWS, DETECTION_WINDOWS):
        model = meta_model(monkeypatch, **VARIANTS[variant], use_conv_embed=conv,
                           focal_windows=windows)
        target, rules = model.state_dict(), rules_of(model)
        loaded, report = adapt_state_dict(port, target, rules=rules)
        check_complete(report, port, target, loaded, rules=rules)
        blocks = sum(VARIANTS[variant]['depths'])
        assert report.adapted[0].startswith(f'{5 * blocks + 1} linear weights')
        resized = [line.split(':')[0] for line in report.adapted[1:]]
        assert resized == ([] if windows == IMAGENET_WINDOWS else
                           [k for k in target if k.endswith('_to_windows.0')])
        assert not report.unexpected
        assert report.missing == [k for k in target if not_in_port(k)]
        assert all(loaded[k].shape == target[k].shape for k in loaded)
        assert len(report.dropped) == len(port) - len(loaded) - 1  # all but the mark


@pytest.mark.parametrize('variant, conv', [(v, c) for v, c, _ in PORTS])
def test_port_loads_exactly_at_224(ports, variant, conv):
    """The port loads into the model of its variant and embedding, which then computes
    exactly the outputs of the model it was written from (stage 3's surrounding-token
    table, which the port lacks, is not used at 224)."""
    port = ports(variant, conv)
    assert port.shapes == port_shapes(**{**VARIANTS[variant], 'depths': FORWARD_DEPTHS},
                                      conv=conv, classes=CLASSES)
    model = blank_copy(port.source)
    report = load_pretrained(model, port.path)
    loaded = model.state_dict()
    for key, value in port.source.state_dict().items():
        assert not_in_port(key) or torch.equal(loaded[key], value), key
    assert outputs_equal(port, model, (224, 224))
    assert report.adapted == [f'{5 * sum(FORWARD_DEPTHS) + 1} linear weights (layers.0.blocks.'
                              '0.attn.qkv.weight, ...): transposed from the (in, out) of the '
                              'paddle layout']
    assert not report.unexpected
    assert report.missing == [k for k in loaded if not_in_port(k)]
    dropped = ' '.join(report.dropped)
    for key in ('layers.2.blocks.1.attn.relative_position_index ',
                'layers.3.blocks.0.attn.relative_position_index_0',
                'layers.0.blocks.0.attn.valid_ind_rolled', 'head.weight', 'norm.bias'):
        assert key in dropped


@pytest.mark.parametrize('variant, conv, protocol', [('T', False, 2), ('B', True, 4)])
def test_port_loads_into_detection_windows(ports, tmp_path, variant, conv, protocol):
    """Through ``init_cfg``, at a detection size, with the dense configs' focal windows: the
    pooled-window tables up-sampled bilinearly (reference: F.interpolate of the source's),
    the rest the source's, stage 3's surrounding-token table (used now) kept at its
    initialisation. Protocol 2 cuts the larger arrays into slices."""
    source = ports(variant, conv).source
    path = paddle_save(port_of(source), tmp_path / 'focal.pdparams', protocol,
                       max_elements=20000)
    cfg = dict(VARIANTS[variant], depths=FORWARD_DEPTHS, use_conv_embed=conv,
               focal_windows=DETECTION_WINDOWS, drop_path_rate=0.)
    model = FocalTransformer(**cfg, init_cfg=dict(type='Pretrained', checkpoint=path)).eval()
    model.init_weights()
    loaded = model.state_dict()
    expected = {}
    for key, value in source.state_dict().items():
        stage = int(key.split('.')[1]) if key.startswith('layers.') else None
        if key.endswith('_to_windows.0'):
            heads, s1, s2 = value.shape[0], 6 + IMAGENET_WINDOWS[stage], \
                6 + DETECTION_WINDOWS[stage]
            expected[key] = F.interpolate(value.view(1, heads, s1, s1), size=(s2, s2),
                                          mode='bilinear', align_corners=False).view(heads, -1)
        else:
            expected[key] = loaded[key] if not_in_port(key) else value
    reference = copy.deepcopy(model)
    reference.load_state_dict(expected)
    size = (256, 160)  # stage 3: 8 x 5, two windows: its surrounding-token table is used
    assert all(torch.equal(a, b) for a, b in zip(outputs(reference, size), outputs(model, size)))


# ----------------------------------------------------------------------- mmengine


def test_mmengine_reads_pdparams_paths(ports):
    """``load_from`` / ``mmengine.runner.load_checkpoint`` read a .pdparams (local, URL or
    on the hub) through mmfocal's reader, in the authors' layout."""
    from mmengine.runner import CheckpointLoader, load_checkpoint
    loader = CheckpointLoader._get_checkpoint_loader
    for name in ('/data/focal_tiny.pdparams', 'relative/focal.pdparams', 's3://b/x.pdparams',
                 'https://host/focal_tiny.pdparams', 'http://host/f.pdparams?download=1'):
        assert loader(name).__name__ == '_load_from_paddle', name
    assert loader('hf-hub:org/repo/focal.pdparams').__name__ == '_load_from_hub'
    assert loader('https://host/focal_tiny.pth').__name__ == 'load_from_http'
    port = ports('T', False)
    model = blank_copy(port.source)
    checkpoint = load_checkpoint(model, port.path)
    assert detect_layout(checkpoint['state_dict']) == 'authors'
    assert not any('relative_position_index' in k for k in checkpoint['state_dict'])
    assert outputs_equal(port, model, (224, 224))


# ----------------------------------------------------------------------- converter


def test_converter_writes_mmfocal_layout_that_loads_strictly(ports, tmp_path, capsys):
    import convert_focalnet
    port = ports('S', True)
    dst = tmp_path / 'focal_s_conv.pth'
    assert convert_focalnet.main([port.path, str(dst)]) == 0
    printed = capsys.readouterr().out
    assert 'linear weights (layers.0.blocks.0.attn.qkv.weight, ...): transposed' in printed
    assert 'head.weight (classification only)' in printed
    out = torch.load(dst, weights_only=True)['state_dict']
    expected = {k: v for k, v in port.source.state_dict().items() if not not_in_port(k)}
    assert out.keys() == expected.keys()
    assert all(torch.equal(out[k], v) for k, v in expected.items())
    model = blank_copy(port.source)
    report = load_pretrained(model, str(dst))
    assert not report.adapted and not report.dropped and not report.unexpected
    assert outputs_equal(port, model, (224, 224))


# ---------------------------------------------------------------------------- errors


class Call:
    """Pickles as a call of ``func(*args)``, as a malicious file would."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize('func, protocol', [(os.system, 2), (eval, 4)])
def test_foreign_global_is_refused_and_never_run(tmp_path, func, protocol):
    def payload(marker):
        command = f'touch {marker}' if func is os.system else f"open({str(marker)!r}, 'w')"
        return pickle.dumps({'patch_embed.proj.weight': Call(func, command)}, protocol=protocol)

    live = tmp_path / 'live.pdparams'
    live.write_bytes(payload(tmp_path / 'ran-under-pickle'))
    subprocess.run([PYTHON, '-c', 'import pickle, sys; pickle.load(open(sys.argv[1], "rb"))',
                    str(live)], check=False, capture_output=True, timeout=60)
    assert (tmp_path / 'ran-under-pickle').exists()  # the file does run a command

    marker = tmp_path / 'ran-under-mmfocal'
    path = tmp_path / 'focal_tiny_patch4_window7_224.pdparams'
    path.write_bytes(payload(marker))
    name = f'{os.system.__module__}.system' if func is os.system else 'builtins.eval'
    with pytest.raises(CheckpointError, match=re.escape(f'{path} asks for the global {name}')):
        read_checkpoint(str(path))
    model = FocalTransformer(embed_dims=16, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1),
                             init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(CheckpointError, match='nothing in the file was run'):
        model.init_weights()
    from mmengine.runner import load_checkpoint
    with pytest.raises(CheckpointError, match=re.escape(name)):
        load_checkpoint(model, str(path))
    assert not marker.exists()


def test_truncated_file(ports, tmp_path, monkeypatch):
    path = tmp_path / 'focal.pdparams'
    with open(ports('T', False).path, 'rb') as f:
        path.write_bytes(f.read(os.path.getsize(f.name) // 2))
    model = meta_model(monkeypatch, **{**VARIANTS['T'], 'depths': FORWARD_DEPTHS})
    with pytest.raises(CheckpointError, match=re.escape(f'{path} is not a readable .pdparams')
                       + '.*download it again'):
        load_pretrained(model, str(path))
    with pytest.raises(PdparamsError, match='not a readable'):
        read_pdparams(b'', 'empty.pdparams')


def test_missing_port_says_where_the_ports_are(tmp_path, monkeypatch):
    """What a config names before the port was downloaded."""
    path = str(tmp_path / 'checkpoints' / 'focal_tiny_patch4_window7_224.pdparams')
    model = meta_model(monkeypatch, **{**VARIANTS['T'], 'depths': FORWARD_DEPTHS})
    with pytest.raises(CheckpointError, match=re.escape(f'checkpoint file not found: {path}') +
                       '.*Where the weights live'):
        load_pretrained(model, path)


@pytest.mark.parametrize('variant, match', [
    (dict(embed_dims=128, num_heads=(4, 8, 16, 32)), r'belong to this variant'),
    (dict(use_conv_embed=True), r'patch_embed\.proj\.weight: the checkpoint has shape '
     r'\(96, 3, 4, 4\), the model \(96, 3, 7, 7\)'),
    (dict(depths=(1, 1, 3, 1)), r'would keep their initialisation: layers\.2\.blocks\.2\.'),
    # Focal-S's port into Focal-T: the same widths, blocks the model lacks
    (dict(depths=(1, 1, 1, 1)), r'have no place in the model: layers\.2\.blocks\.1\.'),
])
def test_port_of_another_variant_is_refused(ports, monkeypatch, variant, match):
    cfg = {**VARIANTS['T'], 'depths': FORWARD_DEPTHS, 'focal_windows': IMAGENET_WINDOWS,
           **variant}
    with pytest.raises(CheckpointError, match=match):
        load_pretrained(meta_model(monkeypatch, **cfg), ports('T', False).path)


def test_focalnet_file_is_refused(ports, tmp_path, monkeypatch):
    """A FocalNet written by paddle.save has none of the attention's tensors; a Focal
    Transformer port into a FocalNet, which declares no Paddle layout, is refused too."""
    torch.manual_seed(0)
    depths = (1, 1, 1, 1)
    focalnet = FocalNet(embed_dims=96, depths=depths)
    port = {k: v.numpy().T.copy() if v.dim() == 2 and k.endswith('.weight') else v.numpy()
            for k, v in focalnet.state_dict().items()}
    path = paddle_save(port, tmp_path / 'focalnet.pdparams')
    model = meta_model(monkeypatch, **{**VARIANTS['T'], 'depths': depths})
    with pytest.raises(CheckpointError, match=r'tensors of the model would keep their '
                       r'initialisation: layers\.0\.blocks\.0\.attn\.'):
        load_pretrained(model, path)
    with pytest.raises(CheckpointError, match='read from a paddle file.*declares no such'):
        load_pretrained(meta_model(monkeypatch, FocalNet, embed_dims=96, depths=depths),
                        ports('T', False).path)


def test_mark_is_kept_under_a_prefix():
    """The mark of a Paddle file survives the choice of a prefix."""
    state = {'backbone.patch_embed.proj.bias': torch.zeros(2),
             FORMAT_MARK + PADDLE: torch.empty(0)}
    assert FORMAT_MARK + PADDLE in unwrap(state, prefix='backbone.')
