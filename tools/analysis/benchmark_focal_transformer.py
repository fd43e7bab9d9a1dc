"""Throughput and peak memory of mmfocal's FocalTransformer-T against peers in the same run.

Peers: mmdet's SwinTransformer-T (embed_dims 96, depths 2,2,6,2, heads 3,6,12,24, window 7)
and the same FocalTransformer weights with the gathering of the original implementation
(four rolls of keys and values, window partition, unfold of the pooled map, explicit
softmax), whose outputs are checked equal to mmfocal's first. Focal windows are (7,5,3,1)
at 224 and (15,13,9,7) at larger sizes. Every (model, size) is measured in a fresh process:
forward images/s under ``torch.inference_mode`` and peak memory of the forward passes
(``torch.cuda.max_memory_allocated`` on GPU; on CPU the growth of the process's peak
resident set size, reset after the model is built, with large blocks allocated by mmap so
that freed memory leaves the resident set).

    python tools/analysis/benchmark_focal_transformer.py --sizes 224 800x1216 --threads 2
"""
import argparse
import json
import os
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from mmfocal.models.backbones.focal_transformer import FocalAttention, FocalTransformer

MODELS = ('FocalTransformer-T (mmfocal)', 'FocalTransformer-T rolls+unfold', 'Swin-T (mmdet)')


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


def build(name, size):
    if name.startswith('Swin'):
        from mmdet.models.backbones import SwinTransformer
        model = SwinTransformer(embed_dims=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24),
                                window_size=7)
        model.eval()  # mmdet's Swin.train() returns None: no chaining
        return model
    torch.manual_seed(0)
    windows = (7, 5, 3, 1) if size[0] * size[1] <= 224 * 224 else (15, 13, 9, 7)
    model = FocalTransformer(focal_windows=windows).eval()
    if 'rolls' in name:
        for stage in model.layers:
            for block in stage.blocks:
                block.attn.__class__ = RolledFocalAttention
                block.attn.expand_size = block.expand_size
                block.attn.focal_window = block.focal_window
    return model


def measure(name, size, batch, repeats, device):
    """One (model, size) in this process: images/s and peak forward memory in MiB."""
    model = build(name, size).to(device)
    x = torch.randn(batch, 3, *size, device=device)
    sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # reset the peak resident set size to the current one
        base = resident_bytes('VmRSS')
    with torch.inference_mode():
        model(x)  # warm-up: caches, kernels
        sync()
        start = time.perf_counter()
        for _ in range(repeats):
            model(x)
        sync()
        elapsed = time.perf_counter() - start
    if device == 'cuda':
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resident_bytes('VmHWM') - base
    return dict(img_s=repeats * batch / elapsed, peak_mib=peak / 2**20)


def resident_bytes(field):
    """VmRSS (current) or VmHWM (peak since the last reset) of this process."""
    with open('/proc/self/status') as f:
        line = next(line for line in f if line.startswith(field + ':'))
    return int(line.split()[1]) * 1024


def check_equal(size, device):
    """Max |difference| between mmfocal's and the rolls+unfold outputs."""
    ours, peer = build(MODELS[0], size).to(device), build(MODELS[1], size).to(device)
    x = torch.randn(1, 3, *size, device=device)
    with torch.inference_mode():
        return max((a - b).abs().max().item() for a, b in zip(ours(x), peer(x)))


def parse_size(text):
    h, _, w = text.partition('x')
    return int(h), int(w or h)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', nargs='+', default=['224', '800x1216'])
    parser.add_argument('--batch', type=int, default=0, help='default: 8 at 224, else 1')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--threads', type=int, default=0)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--worker', nargs=3, metavar=('MODEL', 'SIZE', 'BATCH'),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker:
        name, size, batch = args.worker
        print(json.dumps(measure(name, parse_size(size), int(batch), args.repeats,
                                 args.device)))
        return
    print(f'device {args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}')
    for text in args.sizes:
        size = parse_size(text)
        batch = args.batch or (8 if size[0] * size[1] <= 224 * 224 else 1)
        print(f'input {batch}x3x{size[0]}x{size[1]}: mmfocal vs rolls+unfold max |diff| '
              f'{check_equal(size, args.device):.2e}')
        results = {}
        for name in MODELS:
            cmd = [sys.executable, __file__, '--worker', name, text, str(batch),
                   '--repeats', str(args.repeats), '--threads', str(torch.get_num_threads()),
                   '--device', args.device]
            env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536')
            out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                                 env=env).stdout
            results[name] = json.loads(out.strip().splitlines()[-1])
        ours = results[MODELS[0]]
        for name, r in results.items():
            print(f'  {name:32s} {r["img_s"]:8.2f} img/s {r["peak_mib"]:9.0f} MiB peak   '
                  f'time / mmfocal\'s {ours["img_s"] / r["img_s"]:5.2f}   '
                  f'memory / mmfocal\'s {r["peak_mib"] / max(ours["peak_mib"], 1e-9):5.2f}')
        swin = results[MODELS[2]]
        print(f'  FocalTransformer-T / Swin-T: {swin["img_s"] / ours["img_s"]:.2f}x the time, '
              f'{ours["peak_mib"] / max(swin["peak_mib"], 1e-9):.2f}x the peak memory')


if __name__ == '__main__':
    main()
