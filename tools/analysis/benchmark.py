"""Training or inference cost of mmfocal's backbones against mmdet's Swin-T, in one run.

Models: FocalNet-T (focal windows 9, 2 levels) and FocalTransformer-T (focal windows (7, 5, 3,
1) at 224, else (15, 13, 9, 7)) as mmfocal computes them; mmdet's ``SwinTransformer``-T; and
two references with the same weights: FocalNet-T with channels-first modulation (layout
copies around the convolutions, as the original implementation), and FocalTransformer-T
with the original implementation's gathering (four rolls of keys and values, window
partition, unfold of the pooled map, explicit softmax).

Every (model, round) runs in a fresh process and the rounds alternate the order of the
models, so that drift of a shared machine falls on all of them. A process builds the
model, runs one warm-up step, then times ``--steps`` steps: with ``--mode train`` a forward
and backward pass in ``train()`` mode (drop path 0, gradients set to None before each
step), with ``--mode infer`` a forward pass under ``torch.inference_mode``. Printed: the
median over rounds of each model's median step time, images/s, the peak memory of a step
(``torch.cuda.max_memory_allocated`` growth on GPU; on CPU the growth of the peak resident
set over the built model's during the warm-up step, the first one, since later steps reuse
memory that malloc keeps) and the ratios to Swin-T. The process runs with the default
allocator settings, as a training run does.

    python tools/analysis/benchmark.py --mode train --sizes 512x768 --batch 2
    python tools/analysis/benchmark.py --mode infer --sizes 224 --batch 8
"""
import argparse
import json
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from mmfocal.models.backbones.focal_transformer import FocalAttention, FocalTransformer
from mmfocal.models.backbones.focalnet import FocalModulation, FocalNet

MODELS = ('FocalNet-T', 'FocalNet-T channels-first', 'FocalTransformer-T',
          'FocalTransformer-T rolls+unfold', 'Swin-T')
BASELINE = 'Swin-T'
REFERENCES = {'FocalNet-T channels-first': 'FocalNet-T',
              'FocalTransformer-T rolls+unfold': 'FocalTransformer-T'}


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


def measure(name, size, batch, steps, mode, device, amp):
    """One model in this process: median step time (s) and peak step memory (bytes)."""
    model = build(name, size).to(device)
    model.train(mode == 'train')
    x = torch.randn(batch, 3, *size, device=device)
    step = step_fn(model, x, mode)
    if amp:
        step = torch.autocast(device, dtype=torch.bfloat16 if device == 'cpu'
                              else torch.float16)(step)
    sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
    if device == 'cuda':
        step()  # warm-up: caches, kernels
        sync()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        # The peak is taken in the first step: later ones reuse memory that malloc keeps
        # from it, which the resident set no longer shows as growth.
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # reset the peak resident set size to the current one
        base = resident_bytes('VmRSS')
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
    h, _, w = text.partition('x')
    return int(h), int(w or h)


def run_worker(args, name, text, batch):
    cmd = [sys.executable, __file__, '--worker', name, '--sizes', text, '--batch',
           str(batch), '--mode', args.mode, '--steps', str(args.steps), '--device',
           args.device, '--threads', str(torch.get_num_threads())]
    cmd += ['--amp'] if args.amp else []
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f'{name} at {text} failed:\n{done.stderr[-3000:]}')
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(results, batch):
    base = results.get(BASELINE)
    print(f'  {"model":32s} {"step ms":>9s} {"img/s":>8s} {"peak MiB":>9s}'
          + (f' {"speed vs Swin-T":>16s} {"memory vs Swin-T":>17s}' if base else ''))
    for name, r in results.items():
        line = (f'  {name:32s} {r["seconds"] * 1e3:9.1f} {batch / r["seconds"]:8.2f} '
                f'{r["peak"] / 2**20:9.0f}')
        if base:
            line += (f' {base["seconds"] / r["seconds"]:15.2f}x '
                     f'{r["peak"] / max(base["peak"], 1):16.2f}x')
        print(line)
    for ref, model in REFERENCES.items():
        if ref in results and model in results:
            print(f'  {model} vs {ref}: {results[ref]["seconds"] / results[model]["seconds"]:.2f}x '
                  f'the speed, {results[model]["peak"] / max(results[ref]["peak"], 1):.2f}x '
                  'the peak memory')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--mode', choices=('train', 'infer'), default='train')
    parser.add_argument('--sizes', nargs='+', default=['512x768'],
                        help='HxW or S (square), e.g. 224 512x768')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    parser.add_argument('--amp', action='store_true',
                        help='autocast: float16 on cuda, bfloat16 on cpu')
    parser.add_argument('--models', nargs='+', choices=MODELS, default=list(MODELS))
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--steps', type=int, default=3, help='timed steps per process')
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0: default)')
    parser.add_argument('--worker', choices=MODELS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device is available')
    if args.worker:
        print(json.dumps(measure(args.worker, parse_size(args.sizes[0]), args.batch,
                                 args.steps, args.mode, args.device, args.amp)))
        return
    device_name = (torch.cuda.get_device_name() if args.device == 'cuda'
                   else f'cpu, {torch.get_num_threads()} threads')
    print(f'{args.mode}, {device_name}, torch {torch.__version__}'
          + (', amp' if args.amp else '') + f', {args.rounds} rounds x {args.steps} steps')
    for text in args.sizes:
        size = parse_size(text)
        print(f'input {args.batch}x3x{size[0]}x{size[1]}')
        for name in REFERENCES:
            if name in args.models:
                print(f'  {name}: max |output - {REFERENCES[name]}\'s| = '
                      f'{check_reference(name, size, args.device):.1e}')
        runs = {name: [] for name in args.models}
        for i in range(args.rounds):
            order = args.models if i % 2 == 0 else args.models[::-1]
            for name in order:
                runs[name].append(run_worker(args, name, text, args.batch))
        results = {name: dict(seconds=statistics.median(r['seconds'] for r in rs),
                              peak=statistics.median(r['peak'] for r in rs))
                   for name, rs in runs.items()}
        report(results, args.batch)


if __name__ == '__main__':
    main()
