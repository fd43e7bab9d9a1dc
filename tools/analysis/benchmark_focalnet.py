"""Throughput of mmfocal's FocalNet against peers measured in the same run.

Peers: the same FocalNet weights run with channels-first modulation (the token map is
permuted to (B, C, H, W) and back around the convolutions, as in the original
implementation), and mmdet's Swin-T. Prints images/s and ratios.

    python tools/analysis/benchmark_focalnet.py --sizes 224 800x1216 --threads 2
"""
import argparse
import time

import torch
import torch.nn.functional as F

from mmfocal.models.backbones.focalnet import FocalModulation, FocalNet


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


def channels_first_copy(model):
    peer = FocalNet(embed_dims=96, depths=(2, 2, 6, 2), focal_levels=2, focal_windows=9)
    peer.load_state_dict(model.state_dict())
    for module in peer.modules():
        if isinstance(module, FocalModulation):
            module.__class__ = ChannelsFirstModulation
    return peer


def swin_t():
    from mmdet.models.backbones import SwinTransformer
    return SwinTransformer(embed_dims=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24),
                           window_size=7)


@torch.inference_mode()
def images_per_second(models, x, repeats):
    """Best of ``repeats`` interleaved rounds per model (robust to a busy machine)."""
    best = {name: float('inf') for name in models}
    for model in models.values():
        model(x)  # warm-up
    for _ in range(repeats):
        for name, model in models.items():
            start = time.perf_counter()
            model(x)
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: x.shape[0] / t for name, t in best.items()}


def parse_size(text):
    h, _, w = text.partition('x')
    return int(h), int(w or h)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', nargs='+', default=['224', '800x1216'])
    parser.add_argument('--batch', type=int, default=0, help='default: 8 at 224, else 1')
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--threads', type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ours = FocalNet(embed_dims=96, depths=(2, 2, 6, 2), focal_levels=2, focal_windows=9).eval()
    models = {'FocalNet-T (mmfocal)': ours,
              'FocalNet-T channels-first': channels_first_copy(ours).eval(),
              'Swin-T (mmdet)': swin_t()}
    for model in models.values():
        model.eval()  # mmdet's Swin.train() returns None: no chaining
    for size in args.sizes:
        h, w = parse_size(size)
        batch = args.batch or (8 if h * w <= 224 * 224 else 1)
        x = torch.randn(batch, 3, h, w)
        with torch.inference_mode():
            same = all(torch.allclose(a, b, atol=1e-5, rtol=1e-4) for a, b in zip(
                ours(x), models['FocalNet-T channels-first'](x)))
        rates = images_per_second(models, x, args.repeats)
        print(f'input {batch}x3x{h}x{w}  (outputs equal to channels-first: {same})')
        base = rates['FocalNet-T (mmfocal)']
        for name, rate in rates.items():
            print(f'  {name:28s} {rate:8.2f} img/s   mmfocal / this = {base / rate:5.2f}')


if __name__ == '__main__':
    main()
