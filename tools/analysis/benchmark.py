"""Training or inference cost of mmfocal's backbones against mmdet's Swin-T, in one run.

Models: FocalNet-T (focal windows 9, 2 levels) and FocalTransformer-T (focal windows (7, 5, 3,
1) at 224, else (15, 13, 9, 7)) as mmfocal computes them; mmdet's ``SwinTransformer``-T; and
two references with the same weights: FocalNet-T with channels-first modulation (layout
copies around the convolutions, as the original implementation), and FocalTransformer-T
with the original implementation's gathering (four rolls of keys and values, window
partition, unfold of the pooled map, explicit softmax).

Every (model, round) runs in a fresh process and the rounds alternate the order of the
models, so that drift of a shared machine falls on all of them. A process builds the
model, runs ``--warmup`` steps, then times ``--steps`` steps: with ``--mode train`` a
forward and backward pass in ``train()`` mode (drop path 0, gradients set to None before
each step), with ``--mode infer`` a forward pass under ``torch.inference_mode``; in float32
or under autocast to each of ``--precisions`` (on CUDA all in one process, on the CPU one
process each). Printed, per precision: the median over rounds of each model's median step
time, images/s, the peak memory of a step (``torch.cuda.max_memory_allocated`` growth on
GPU; on CPU the growth of the peak resident set over the built model's during the first
warm-up step, since later steps reuse memory that malloc keeps) and the ratios to Swin-T.
The process runs with the default allocator settings, as a training run does.

``--paths`` compares compute paths of mmfocal's models (``COMPUTE_PATHS`` in
``mmfocal/models/backbones/base.py``): ``recompute`` (the recomputing autograd Functions)
or ``autograd`` (plain autograd), and FocalNet's focal convolutions on channels-last
(``nhwc``) or (B, C, H, W) (``nchw``) memory; each model gets one row per distinct part
that changes it (FocalTransformer-T has no focal convolutions; inference no backward).
``--cudnn-benchmark`` lets cuDNN time its algorithms, for every model.

``--runtimes torch onnxruntime`` (inference on the CPU, float32) adds a row per model run
by ONNX Runtime: the worker exports the model at the measured input size (TorchScript
exporter, opset 17, as mmdeploy does) and times ``InferenceSession.run`` with as many
threads as torch; the outputs' largest difference from eager mode is printed.

    python tools/analysis/benchmark.py --mode train --sizes 512x768 --batch 2
    python tools/analysis/benchmark.py --mode infer --sizes 224 --batch 8
    python tools/analysis/benchmark.py --mode infer --sizes 224 --batch 8 \
        --models FocalNet-T FocalTransformer-T Swin-T --runtimes torch onnxruntime
    python tools/analysis/benchmark.py --device cuda --precisions fp32 bf16 fp16 \
        --paths recompute/nchw recompute/nhwc autograd/nchw autograd/nhwc
    python tools/analysis/benchmark.py --against main --models FocalNet-T Swin-T
    python tools/analysis/benchmark.py --mode infer --system upernet --sizes 512 \
        --batch 1 --runtimes torch onnxruntime

``--system mask_rcnn`` or ``--system upernet`` (inference on the CPU, float32) measures,
instead of the backbones, the paper's Mask R-CNN 1x or UperNet config of each of FocalNet-T,
FocalTransformer-T and Swin-T (mmdet's and mmseg's own configs) with random weights, on
random images of the given sizes, which the config's test pipeline resizes as for any
image: eager rows run the model's ``test_step`` (what ``tools/test.py`` and the inferencers
run), ONNX Runtime rows (``--runtimes``) the graph that mmdeploy exports with the repository's
dynamic deploy config (exported once per run). Mask R-CNN keeps 100 detections per image
(score threshold 0) so that its heads do the same work for every backbone; the graph
returns the masks at 28x28, the eager model pastes them into the image.

``--against GIT_REF`` adds, for each of mmfocal's models (FocalNet-T, FocalTransformer-T),
a row of the same model as the git ref computes it (``NAME @REF``): the ref's ``mmfocal``
package is extracted into a temporary directory and imported from there by that row's
workers, which run in the same rounds, alternating with the others. Below the table, for
every row the speed ratio to Swin-T of each round (the spread), and for every model its
speed and memory ratio to the ref, with the per-round ratios (a round's workers run next
to each other); a difference is called one only when every round agrees on its sign.
"""
import argparse
import contextlib
import dataclasses
import inspect
import json
import math
import os
import os.path as osp
import re
import statistics
import subprocess
import sys
import tempfile
import time
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F

import mmfocal
from mmfocal.models.backbones import base
from mmfocal.models.backbones.focal_transformer import FocalAttention, FocalTransformer
from mmfocal.models.backbones.focalnet import FocalModulation, FocalNet

MODELS = ('FocalNet-T', 'FocalNet-T channels-first', 'FocalTransformer-T',
          'FocalTransformer-T rolls+unfold', 'Swin-T')
BASELINE = 'Swin-T'
REFERENCES = {'FocalNet-T channels-first': 'FocalNet-T',
              'FocalTransformer-T rolls+unfold': 'FocalTransformer-T'}
PRECISIONS = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}
# compute paths: functions (recompute / autograd) / layout of the focal convolutions
PATHS = ('recompute/nhwc', 'recompute/nchw', 'autograd/nhwc', 'autograd/nchw')
RUNTIMES = ('torch', 'onnxruntime')
ONNX_OPSET = 17
# the models that --against measures as a git ref computes them
OWN_MODELS = ('FocalNet-T', 'FocalTransformer-T')
# --system: (deploy config, {model: its model config})
SYSTEMS = {
    'mask_rcnn': ('configs/deploy/instance-seg_onnxruntime_dynamic.py', {
        'FocalNet-T': 'configs/detection/mask_rcnn_focalnet_t_1x.py',
        'FocalTransformer-T': 'configs/detection/mask_rcnn_focal_transformer_t_1x.py',
        'Swin-T': 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'}),
    'upernet': ('configs/deploy/segmentation_onnxruntime_dynamic.py', {
        'FocalNet-T': 'configs/segmentation/upernet_focalnet_t_512x512_160k_ade20k.py',
        'FocalTransformer-T':
        'configs/segmentation/upernet_focal_transformer_t_512x512_160k_ade20k.py',
        'Swin-T': 'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_'
                  'ade20k-512x512.py'})}
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


class Row(NamedTuple):
    """One row of a table: a model, its compute path (None: the device's default), the
    runtime, and the git ref whose mmfocal computes it (None: the working tree)."""
    model: str
    path: Optional[str]
    runtime: str = 'torch'
    ref: Optional[str] = None


class ChannelsFirstModulation(FocalModulation):
    """Focal modulation computed in (B, C, H, W) with explicit layout copies."""

    def forward(self, x):
        dims = x.shape[-1]
        x = self.f(x).permute(0, 3, 1, 2).contiguous()
        q, ctx, gates = torch.split(x, (dims, dims, self.focal_level + 1), 1)
        ctx_all = 0
        for level, focal_layer in enumerate(self.focal_layers):
            ctx = focal_layer(ctx)
            ctx_all = ctx_all + ctx * gates[:, level:level + 1]
        ctx_global = F.gelu(ctx.mean((2, 3), keepdim=True))
        ctx_all = ctx_all + ctx_global * gates[:, self.focal_level:]
        if self.normalize_modulator:
            ctx_all = ctx_all / (self.focal_level + 1)
        out = (q * self.h(ctx_all)).permute(0, 2, 3, 1).contiguous()
        if self.ln is not None:
            out = self.ln(out)
        return self.proj_drop(self.proj(out))


class RolledFocalAttention(FocalAttention):
    """The same attention, keys gathered as in the original implementation.

    Supports one pooled level (focal_levels=2). Padding, out-of-map pooled cells and
    (unless wrapping) out-of-map surrounding tokens are masked with mmfocal's key mask.
    """

    def forward(self, x, pooled, layout):
        batch, height, width, dims = x.shape
        w, heads, hd = self.window_size, self.num_heads, dims // self.num_heads
        x = F.pad(x, (0, 0, 0, -width % w, 0, -height % w))
        p_h, p_w = x.shape[1] // w, x.shape[2] // w
        q, k, v = self.qkv(x).chunk(3, -1)

        def windows(t):  # (B, Hp, Wp, C) -> (B * nW, nH, w * w, hd)
            t = t.reshape(batch, p_h, w, p_w, w, heads, hd).permute(0, 1, 3, 5, 2, 4, 6)
            return t.reshape(-1, heads, w * w, hd)

        keys, values = [windows(k)], [windows(v)]
        if layout.with_neighbours:
            e = self.expand_size
            r, c = torch.meshgrid(torch.arange(w), torch.arange(w), indexing='ij')
            inside = [(r < w - e) & (c < w - e), (r < w - e) & (c >= e),
                      (r >= e) & (c < w - e), (r >= e) & (c >= e)]
            keep = torch.cat([~m.flatten() for m in inside]).nonzero().flatten()
            for t, out in ((k, keys), (v, values)):
                rolled = [windows(torch.roll(t, shift, (1, 2)))
                          for shift in ((-e, -e), (-e, e), (e, -e), (e, e))]
                out.append(torch.cat(rolled, 2)[:, :, keep.to(t.device)])
        s_r = self.focal_window
        kv = self.qkv(pooled[0])[..., dims:].permute(0, 3, 1, 2)  # (B, 2C, p_h, p_w)
        kv = F.unfold(kv, s_r, padding=s_r // 2).view(batch, 2, heads, hd, s_r * s_r, -1)
        kv = kv.permute(1, 0, 5, 2, 4, 3).reshape(2, -1, heads, s_r * s_r, hd)
        keys.append(kv[0])
        values.append(kv[1])
        attn = (windows(q) * self.scale) @ torch.cat(keys, 2).transpose(-2, -1)
        mask = layout.key_mask.repeat(batch, 1)[:, None, None]
        attn = (attn + self.position_bias(layout.with_neighbours) + mask).softmax(-1)
        out = (attn @ torch.cat(values, 2)).view(batch, p_h, p_w, heads, w, w, hd)
        out = out.permute(0, 1, 4, 2, 5, 3, 6).reshape(batch, p_h * w, p_w * w, dims)
        return self.proj(out[:, :height, :width])


def build(name: str, size) -> torch.nn.Module:
    """The named model, seeded, drop path 0."""
    torch.manual_seed(0)
    if name == 'Swin-T':
        from mmdet.models.backbones import SwinTransformer
        return SwinTransformer(embed_dims=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24),
                               window_size=7, drop_path_rate=0.)
    if name.startswith('FocalNet-T'):
        model = FocalNet(embed_dims=96, depths=(2, 2, 6, 2), focal_levels=2, focal_windows=9,
                         drop_path_rate=0.)
        peer, cls = FocalModulation, ChannelsFirstModulation
    else:
        windows = (7, 5, 3, 1) if size[0] * size[1] <= 224 * 224 else (15, 13, 9, 7)
        model = FocalTransformer(focal_windows=windows, drop_path_rate=0.)
        peer, cls = FocalAttention, RolledFocalAttention
    if name in REFERENCES:
        for stage in model.layers:
            for block in stage.blocks:
                for module in block.modules():
                    if type(module) is peer:
                        module.__class__ = cls
                if cls is RolledFocalAttention:
                    block.attn.expand_size = block.expand_size
                    block.attn.focal_window = block.focal_window
    return model


def resident_bytes(field: str) -> int:
    """VmRSS (current) or VmHWM (peak since the last reset) of this process."""
    with open('/proc/self/status') as f:
        line = next(line for line in f if line.startswith(field + ':'))
    return int(line.split()[1]) * 1024


def step_fn(model, x, mode):
    if mode == 'infer':
        def step():
            with torch.inference_mode():
                model(x)
        return step

    def step():
        for param in model.parameters():
            param.grad = None
        sum(out.float().mean() for out in model(x)).backward()
    return step


def set_path(device: str, path: str) -> None:
    """Make ``path`` (one of :data:`PATHS`) the compute path of ``device`` in this process."""
    functions, layout = path.split('/')
    if not hasattr(base, 'COMPUTE_PATHS'):
        raise RuntimeError(f'--paths {path}: the mmfocal of {osp.dirname(mmfocal.__file__)} '
                           'has no compute paths')
    # the device's other fields (chunk size, weight gradient) as they are
    base.COMPUTE_PATHS[device] = dataclasses.replace(
        base.compute_path(torch.device(device)), recompute=functions == 'recompute',
        channels_last_convs=layout == 'nhwc')


def path_parts(name: str, mode: str) -> list:
    """Indices of the parts of a path (functions, layout) that change how ``name``
    computes in ``mode``."""
    parts = [0] if mode == 'train' and name in ('FocalNet-T', 'FocalTransformer-T') else []
    return parts + [1] if name == 'FocalNet-T' else parts


def table_rows(models, paths, mode) -> dict:
    """{row label: (model, path or None for the device's default)}: each model once per
    distinct part of ``paths`` that changes it (Swin-T and the references: once)."""
    rows = {}
    for name in models:
        for path in paths or [None]:
            parts = [part for i, part in enumerate(path.split('/'))
                     if i in path_parts(name, mode)] if path else []
            label = f'{name} {"/".join(parts)}' if parts else name
            rows.setdefault(label, (name, path if parts else None))
    return rows


def with_runtimes(rows: dict, runtimes, against: Optional[str] = None) -> dict:
    """{row label: :class:`Row`}: the rows of :func:`table_rows` run by torch, one row per
    model run by ONNX Runtime (its graph is the same on every path), and with ``against``
    each row of mmfocal's models again as that git ref computes it (``LABEL @REF``)."""
    out = {}
    for runtime in runtimes:
        for label, (name, path) in rows.items():
            if runtime == 'torch':
                out[label] = Row(name, path, runtime)
            else:
                out.setdefault(f'{name} {runtime}', Row(name, None, runtime))
    if not against:
        return out
    paired = {}  # each row of the ref right after the working tree's, so that they alternate
    for label, row in out.items():
        paired[label] = row
        if row.model in OWN_MODELS:
            paired[f'{label} @{against}'] = row._replace(ref=against)
    return paired


@contextlib.contextmanager
def checkout(ref: Optional[str]):
    """A temporary directory holding the ``mmfocal`` package of git ref ``ref`` (None:
    nothing to check out, yields None)."""
    if ref is None:
        yield None
        return
    done = subprocess.run(['git', '-C', ROOT, 'rev-parse', '--verify', '--quiet',
                           f'{ref}^{{commit}}'], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f'--against {ref}: not a commit of the repository at {ROOT}')
    with tempfile.TemporaryDirectory(prefix='mmfocal-against-') as directory:
        archive = subprocess.run(['git', '-C', ROOT, 'archive', done.stdout.strip(),
                                  'mmfocal'], capture_output=True, check=True).stdout
        subprocess.run(['tar', '-x', '-C', directory], input=archive, check=True)
        yield directory


def onnxruntime_step(model, x, directory: str):
    """(a step running ``model`` exported to ONNX in ONNX Runtime on x and returning the
    outputs, the outputs of eager mode)."""
    path = osp.join(directory, 'model.onnx')
    # the TorchScript exporter, which mmdeploy uses (torch >= 2.9 defaults to dynamo)
    legacy = {'dynamo': False} if 'dynamo' in inspect.signature(
        torch.onnx.export).parameters else {}
    model.eval()
    with torch.no_grad():
        expected = model(x)
        torch.onnx.export(model, (x, ), path, input_names=['input'],
                          opset_version=ONNX_OPSET, **legacy)
    feed = {'input': x.numpy()}
    return onnxruntime_run(path, feed), expected


def onnxruntime_run(path: str, feed: dict):
    """A step running the graph at ``path`` on ``feed`` in ONNX Runtime on the CPU, with as
    many threads as torch."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    return lambda: session.run(None, feed)


def system_config(system: str, name: str, path: str) -> str:
    """Write to ``path`` the model config of ``name``'s ``system`` (:data:`SYSTEMS`),
    without pretrained weights, Mask R-CNN keeping every detection up to its 100."""
    base_cfg = SYSTEMS[system][1][name]
    if '::' not in base_cfg:
        base_cfg = osp.join(ROOT, base_cfg)
    overrides = dict(backbone=dict(init_cfg=None))
    if system == 'mask_rcnn':
        overrides['test_cfg'] = dict(rcnn=dict(score_thr=0.))
    with open(path, 'w') as f:
        f.write(f'_base_ = [{base_cfg!r}]\nmodel = {overrides!r}\n')
    return path


def system_step(system: str, name: str, size, batch: int, runtime: str, cache: str):
    """A step of ``name``'s ``system`` on ``batch`` random images of ``size``: the model's
    ``test_step`` (torch) or mmdeploy's graph of it in ONNX Runtime. The random weights
    and the graph are written to ``cache`` by the run's first worker of the row."""
    import numpy as np
    from mmdeploy.apis import build_task_processor, torch2onnx

    from mmfocal.deploy.export import load_configs
    from mmfocal.deploy.mmdeploy_compat import mmdeploy_on_current_torch
    tag = re.sub(r'\W+', '_', f'{system} {name} {size[0]}x{size[1]} {batch} '
                 f'{osp.dirname(mmfocal.__file__)}')
    config = system_config(system, name, osp.join(cache, f'{tag}.py'))
    deploy_cfg, model_cfg = load_configs(osp.join(ROOT, SYSTEMS[system][0]), config)
    task = build_task_processor(model_cfg, deploy_cfg, 'cpu')
    checkpoint = osp.join(cache, f'{tag}.pth')
    if not osp.exists(checkpoint):
        torch.manual_seed(0)
        torch.save({'state_dict': task.build_pytorch_model(None).state_dict()}, checkpoint)
    model = task.build_pytorch_model(checkpoint)
    images = [np.random.RandomState(i).randint(0, 256, (*size, 3), dtype=np.uint8)
              for i in range(batch)]
    data, inputs = task.create_input(images, data_preprocessor=model.data_preprocessor)
    if runtime == 'torch':
        def step():
            with torch.no_grad():
                model.test_step(data)
        return step
    onnx_file = osp.join(cache, f'{tag}.onnx')
    if not osp.exists(onnx_file):
        with mmdeploy_on_current_torch():
            torch2onnx(images[0], cache, osp.basename(onnx_file), deploy_cfg, model_cfg,
                       checkpoint, 'cpu')
    return onnxruntime_run(onnx_file, {deploy_cfg.onnx_config.input_names[0]: inputs.numpy()})


def measure(model, x, steps, warmup, mode, device, dtype):
    """Median step time (s) and peak step memory (bytes) of ``model`` on x, under autocast
    to ``dtype`` unless it is None."""
    model.train(mode == 'train')
    step = step_fn(model, x, mode)
    if dtype is not None:
        step = torch.autocast(device, dtype=dtype)(step)
    return timed(step, steps, warmup, device)


def timed(step, steps, warmup, device):
    """Median time (s) and peak memory (bytes) of ``step`` after ``warmup`` calls."""
    sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
    if device == 'cuda':
        for _ in range(warmup):  # caches, kernels, cuDNN's timings
            step()
        sync()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        # The peak is taken in the first step: later ones reuse memory that malloc keeps
        # from it, which the resident set no longer shows as growth.
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # reset the peak resident set size to the current one
        base = resident_bytes('VmRSS')
        for _ in range(warmup):
            step()
        peak = resident_bytes('VmHWM') - base
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    if device == 'cuda':
        peak = torch.cuda.max_memory_allocated() - base
    return dict(seconds=statistics.median(times), peak=peak)


def check_reference(name, size, device) -> float:
    """Max |difference| of the outputs of a reference and the model it stands beside."""
    x = torch.randn(1, 3, *size, device=device)
    with torch.inference_mode():
        outs = [build(n, size).to(device).eval()(x) for n in (REFERENCES[name], name)]
    return max((a - b).abs().max().item() for a, b in zip(*outs))


def parse_size(text: str):
    """'HxW' or 'S', with an optional ':B' (the batch at that size) -> (H, W)."""
    h, _, w = text.partition(':')[0].partition('x')
    return int(h), int(w or h)


def size_batch(text: str, default: int) -> int:
    """The batch of a --sizes entry: its ':B', else ``default`` (--batch)."""
    _, _, batch = text.partition(':')
    return int(batch) if batch else default


def growth_exponent(points: list) -> float:
    """The least-squares slope of log(step time per image) in log(pixels per image) over
    ``points`` [(pixels, seconds per image)]: how the cost grows with the input."""
    xs = [math.log(p) for p, _ in points]
    ys = [math.log(s) for _, s in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / \
        sum((x - mx) ** 2 for x in xs)


def report_growth(series: dict, rows: dict) -> None:
    """Per row, the growth exponent of its step time per image in the pixels, and its
    difference from Swin-T's in the same runtime (:func:`baseline_label`); ``series``
    {row label: [(pixels, batch, result)]}, ``rows`` {row label: :class:`Row`}."""
    exponents = {label: growth_exponent([(p, r['seconds'] / b) for p, b, r in points])
                 for label, points in series.items() if len(points) > 1}
    if not exponents:
        return
    print('growth of the step time per image with the pixels (least-squares exponent):')
    for label, exponent in exponents.items():
        base = exponents.get(baseline_label(rows, label))
        versus = f' ({exponent - base:+.2f} vs Swin-T)' if base is not None and \
            rows[label].model != BASELINE else ''
        print(f'  {label:32s} {exponent:.2f}{versus}')


def plot_growth(series: dict, path: str) -> None:
    """Step time per image and peak memory against the pixels, one line per row
    (log-log), as a picture at ``path``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    figure, (time_axis, memory_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, points in series.items():
        points = sorted(points, key=lambda point: point[0])
        pixels = [p for p, _, _ in points]
        time_axis.plot(pixels, [r['seconds'] / b * 1e3 for _, b, r in points], 'o-',
                       label=label)
        if all(r['peak'] is not None for _, _, r in points):
            memory_axis.plot(pixels, [r['peak'] / 2**20 for _, _, r in points], 'o-',
                             label=label)
    for axis, title in ((time_axis, 'step time per image (ms)'),
                        (memory_axis, 'peak memory of a step (MiB)')):
        axis.set(xscale='log', yscale='log', xlabel='pixels per image', title=title)
        axis.grid(True, which='both', alpha=0.3)
    time_axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    print(f'plot: {path}')


def run_worker(args, row: Row, text, precisions, source: Optional[str] = None):
    """[{seconds, peak}] of ``row`` for each of ``precisions``, measured in a fresh process
    that imports mmfocal from ``source`` (a directory holding the ref's package) when the
    row has a ref; systems keep their weights and graphs in ``args.cache``."""
    name, path, runtime = row.model, row.path, row.runtime
    cmd = [sys.executable, __file__, '--worker', name, '--sizes', text, '--batch',
           str(size_batch(text, args.batch)), '--mode', args.mode, '--steps',
           str(args.steps), '--warmup', str(args.warmup), '--device', args.device, '--threads',
           str(torch.get_num_threads()), '--precisions', *precisions, '--runtimes', runtime]
    cmd += ['--paths', path] if path else []
    cmd += ['--cudnn-benchmark'] if args.cudnn_benchmark else []
    cmd += ['--system', args.system, '--cache', args.cache] if args.system else []
    env = dict(os.environ)
    if row.ref:
        cmd += ['--source', source]
        env['PYTHONPATH'] = os.pathsep.join(filter(None, [source, env.get('PYTHONPATH')]))
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode:
        raise RuntimeError(f'{name} at {text} failed:\n{done.stderr[-3000:]}')
    return json.loads(done.stdout.strip().splitlines()[-1])


def worker(args) -> list:
    """The measurements of one model (``--worker``) for each of ``--precisions``."""
    package = osp.dirname(osp.abspath(mmfocal.__file__))
    if args.source and package != osp.join(osp.abspath(args.source), 'mmfocal'):
        raise RuntimeError(f'mmfocal was imported from {package}, not from {args.source}')
    if args.paths:
        set_path(args.device, args.paths[0])
    size = parse_size(args.sizes[0])
    if args.system:
        step = system_step(args.system, args.worker, size, args.batch, args.runtimes[0],
                           args.cache)
        return [dict(timed(step, args.steps, args.warmup, args.device),
                     **({'peak': None} if args.runtimes == ['onnxruntime'] else {}))]
    model = build(args.worker, size).to(args.device)
    x = torch.randn(args.batch, 3, *size, device=args.device)
    if args.runtimes == ['onnxruntime']:
        with tempfile.TemporaryDirectory() as directory:
            step, expected = onnxruntime_step(model, x, directory)
            result = timed(step, args.steps, args.warmup, args.device)
            gap = max(float(abs(g - e.numpy()).max()) for g, e in zip(step(), expected))
            return [dict(result, peak=None, max_abs=gap)]
    return [measure(model, x, args.steps, args.warmup, args.mode, args.device,
                    PRECISIONS[precision]) for precision in args.precisions]


def median_result(rounds: list) -> Optional[dict]:
    """The median {seconds, peak, max_abs} of a row's rounds (None: a round that failed),
    or None where every round failed."""
    done = [r for r in rounds if r is not None]
    if not done:
        return None
    gaps = [r['max_abs'] for r in done if r.get('max_abs') is not None]
    return dict(seconds=statistics.median(r['seconds'] for r in done),
                peak=None if done[0]['peak'] is None else
                statistics.median(r['peak'] for r in done),
                max_abs=max(gaps) if gaps else None)


def round_ratios(rounds: list, base_rounds: list) -> list:
    """Per round where both ran: base's step time / the row's (its speed relative to base)."""
    return [b['seconds'] / r['seconds'] for r, b in zip(rounds, base_rounds)
            if r is not None and b is not None]


def verdict(ratios: list) -> str:
    """Whether the per-round speed ratios show a difference: only when every round agrees."""
    if len(ratios) < 2:
        return 'one round: no spread to judge by'
    if min(ratios) > 1:
        return 'faster in every round'
    if max(ratios) < 1:
        return 'slower in every round'
    return 'within the spread'


def span(ratios: list) -> str:
    return f'{min(ratios):.2f}x to {max(ratios):.2f}x' if ratios else '-'


def baseline_label(rows: dict, label: str) -> str:
    """The label of the Swin-T row that ``label`` is compared with: Swin-T run by the
    same runtime where the table has it, else eager Swin-T."""
    same = next((k for k, v in rows.items()
                 if v == Row(BASELINE, None, rows[label].runtime)), None)
    return same or BASELINE


def report(rounds: dict, batch, rows):
    """One table: ``rounds`` {row label: [{seconds, peak} per round, None where it failed]},
    ``rows`` {row label: :class:`Row`}; then the spread of the ratios to Swin-T over rounds
    and, for rows with a ref, the A/B against it. Each row is compared with Swin-T run by
    the same runtime (eager Swin-T where that is not measured). ONNX Runtime rows have no
    peak memory: the session allocates before any step, and holds its own copy of the
    weights."""
    results = {label: median_result(rs) for label, rs in rounds.items()}
    bases = {label: baseline_label(rows, label) for label in rows}
    print(f'  {"model":32s} {"step ms":>9s} {"img/s":>8s} {"peak MiB":>9s}'
          + (f' {"speed vs Swin-T":>16s} {"memory vs Swin-T":>17s}'
             if results.get(BASELINE) else ''))
    for name, r in results.items():
        if r is None:
            print(f'  {name:32s} failed')
            continue
        peak = '-' if r['peak'] is None else f'{r["peak"] / 2**20:.0f}'
        line = (f'  {name:32s} {r["seconds"] * 1e3:9.1f} {batch / r["seconds"]:8.2f} '
                f'{peak:>9s}')
        base = results.get(bases[name])
        if base:
            memory = '-' if r['peak'] is None else f'{r["peak"] / max(base["peak"], 1):.2f}x'
            line += f' {base["seconds"] / r["seconds"]:15.2f}x {memory:>17s}'
        print(line)
    for label, r in results.items():
        eager = rows[label]._replace(runtime='torch')
        eager_label = next((k for k, v in rows.items() if v == eager), None)
        if rows[label].runtime == 'onnxruntime' and r and results.get(eager_label):
            gap = '' if r['max_abs'] is None else \
                f', max |output difference| {r["max_abs"]:.1e}'
            print(f'  {label} vs {eager_label}: '
                  f'{results[eager_label]["seconds"] / r["seconds"]:.2f}x the speed{gap}')
    for ref, model in REFERENCES.items():
        for label, r in results.items():
            if rows[label].model == model and rows[label].runtime == 'torch' and \
                    rows[label].ref is None and r and results.get(ref):
                print(f'  {label} vs {ref}: {results[ref]["seconds"] / r["seconds"]:.2f}x '
                      f'the speed, {r["peak"] / max(results[ref]["peak"], 1):.2f}x '
                      'the peak memory')
    if results.get(BASELINE) and len(rounds[BASELINE]) > 1:
        print('  speed vs Swin-T (same runtime) by round:')
        for label, rs in rounds.items():
            if rows[label].model != BASELINE and results[label]:
                ratios = round_ratios(rs, rounds[bases[label]])
                print(f'    {label:32s} {" ".join(f"{x:.2f}x" for x in ratios)} '
                      f'(spread {span(ratios)})')
    for label, row in rows.items():
        if row.ref is None:
            continue
        new = next((k for k, v in rows.items() if v == row._replace(ref=None)), None)
        if not (results.get(label) and results.get(new)):
            continue
        ratios = round_ratios(rounds[new], rounds[label])
        old, now = results[label], results[new]
        memory = '' if now['peak'] is None else \
            f', {now["peak"] / max(old["peak"], 1):.2f}x the peak memory'
        print(f'  A/B {new} vs {label}: {old["seconds"] / now["seconds"]:.2f}x the speed'
              f'{memory}; by round {" ".join(f"{x:.2f}x" for x in ratios)}: '
              f'{verdict(ratios)}')


def measure_size(args, text: str, rows: dict, sources: dict) -> dict:
    """{precision: {row label: [{seconds, peak} per round, None where it failed]}} at one
    input size; ``sources`` {ref: directory of its package}. Each measurement and failure
    is printed to stderr as it comes (a run stopped early keeps them)."""
    runs = {precision: {label: [] for label in rows} for precision in args.precisions}
    groups = [[p] for p in args.precisions] if args.device == 'cpu' else [args.precisions]
    labels = list(rows)
    for i in range(args.rounds):
        for label in labels if i % 2 == 0 else labels[::-1]:
            for precisions in groups:
                try:
                    results = run_worker(args, rows[label], text, precisions,
                                         sources.get(rows[label].ref))
                except RuntimeError as error:
                    print(f'{label} ({", ".join(precisions)}): {error}', file=sys.stderr)
                    results = [None] * len(precisions)
                for precision, result in zip(precisions, results):
                    runs[precision][label].append(result)
                    if result is None:
                        continue
                    peak = '' if result['peak'] is None else \
                        f', {result["peak"] / 2**20:.0f} MiB'
                    print(f'round {i + 1}, {label}, {precision}: {result["seconds"] * 1e3:.1f} '
                          f'ms{peak}', file=sys.stderr, flush=True)
    return runs


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--mode', choices=('train', 'infer'), default='train')
    parser.add_argument('--sizes', nargs='+', default=['512x768'],
                        help='HxW or S (square), each with an optional :BATCH, e.g. 224:8 '
                        '512x768; with several, the growth exponents')
    parser.add_argument('--batch', type=int, default=2, help='batch of sizes without one')
    parser.add_argument('--plot', metavar='PNG',
                        help='draw time and memory against the pixels (several --sizes)')
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    parser.add_argument('--amp', action='store_true',
                        help='autocast: --precisions fp16 on cuda, bf16 on cpu')
    parser.add_argument('--precisions', nargs='+', choices=PRECISIONS,
                        help='float32 and/or autocast dtypes (default fp32)')
    parser.add_argument('--paths', nargs='+', choices=PATHS,
                        help='compute paths of mmfocal\'s models (default: the device\'s)')
    parser.add_argument('--cudnn-benchmark', action='store_true',
                        help='torch.backends.cudnn.benchmark = True')
    parser.add_argument('--models', nargs='+', choices=MODELS,
                        help='default: all (with --system: those it has)')
    parser.add_argument('--system', choices=SYSTEMS,
                        help='measure this detector / segmentor of each model instead')
    parser.add_argument('--runtimes', nargs='+', choices=RUNTIMES, default=['torch'],
                        help='eager PyTorch and/or ONNX Runtime (inference, CPU, fp32)')
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--steps', type=int, default=3, help='timed steps per process')
    parser.add_argument('--warmup', type=int, default=1, help='untimed steps first')
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0: default)')
    parser.add_argument('--against', metavar='GIT_REF',
                        help='also measure mmfocal\'s models as this git ref computes them')
    parser.add_argument('--worker', choices=MODELS, help=argparse.SUPPRESS)
    parser.add_argument('--source', help=argparse.SUPPRESS)
    parser.add_argument('--cache', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device is available')
    if args.amp and args.precisions:
        parser.error('--amp and --precisions: give one of them')
    if not args.precisions:
        args.precisions = [('fp16' if args.device == 'cuda' else 'bf16') if args.amp
                           else 'fp32']
    if 'onnxruntime' in args.runtimes and (args.mode, args.device, args.precisions) != (
            'infer', 'cpu', ['fp32']):
        parser.error('--runtimes onnxruntime: inference (--mode infer) on the CPU in float32')
    if args.system:
        models = list(SYSTEMS[args.system][1])
        if (args.mode, args.device, args.precisions) != ('infer', 'cpu', ['fp32']) or \
                args.paths or not set(args.models or models) <= set(models):
            parser.error(f'--system {args.system}: inference (--mode infer) on the CPU in '
                         f'float32, of {", ".join(models)}, on their default paths')
        args.models = args.models or models
    args.models = args.models or list(MODELS)
    if args.warmup < 1 or args.steps < 1 or args.rounds < 1:
        parser.error('--warmup, --steps and --rounds must be at least 1')
    return args


def main():
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    if args.worker:
        print(json.dumps(worker(args)))
        return
    device_name = (torch.cuda.get_device_name() if args.device == 'cuda'
                   else f'cpu, {torch.get_num_threads()} threads')
    print(f'{args.mode}, {device_name}, torch {torch.__version__}'
          + (', cudnn.benchmark' if args.cudnn_benchmark else '')
          + f', {args.rounds} rounds x {args.steps} steps')
    rows = with_runtimes(table_rows(args.models, args.paths, args.mode), args.runtimes,
                         args.against)
    failed = False
    series = {}  # precision -> {row label: [(pixels, batch, result)]}
    with checkout(args.against) as source, tempfile.TemporaryDirectory(
            prefix='mmfocal-systems-') as args.cache:
        if args.system:
            print(f'system: {args.system} (images resized by the test pipeline), '
                  f'{", ".join(SYSTEMS[args.system][1][name] for name in args.models)}')
        if args.against:
            print(f'against {args.against} ({git_commit(args.against)}), extracted to '
                  f'{source}')
        for text in args.sizes:
            size, batch = parse_size(text), size_batch(text, args.batch)
            print(f'input {batch}x3x{size[0]}x{size[1]}')
            for name in REFERENCES:
                if name in args.models:
                    print(f'  {name}: max |output - {REFERENCES[name]}\'s| = '
                          f'{check_reference(name, size, args.device):.1e}')
            for precision, rounds in measure_size(args, text, rows,
                                                  {args.against: source}).items():
                print(f'input {batch}x3x{size[0]}x{size[1]}, {precision}')
                report(rounds, batch, rows)
                failed |= any(all(r is None for r in rs) for rs in rounds.values())
                for label, rs in rounds.items():
                    if median_result(rs):
                        series.setdefault(precision, {}).setdefault(label, []).append(
                            (size[0] * size[1], batch, median_result(rs)))
    for precision, rows_series in series.items():
        if len(args.sizes) > 1:
            print(f'{precision}: ', end='')
            report_growth(rows_series, rows)
    if args.plot and series:
        plot_growth(next(iter(series.values())), args.plot)
    sys.exit(1 if failed else 0)


def git_commit(ref: str) -> str:
    return subprocess.run(['git', '-C', ROOT, 'rev-parse', '--short', ref],
                          capture_output=True, text=True).stdout.strip()


if __name__ == '__main__':
    main()
