"""Differences between a backend's outputs and PyTorch's, for one image.

Detections (mmdeploy's ``dets`` (B, N, 5) boxes and score, ``labels`` (B, N) and
optionally ``masks`` (B, N, h, w)) are matched order-insensitively: detections of equal
label are paired so that the sum of their largest box/score differences is least, then
masks are compared pair by pair. A detection left without a partner is tolerated only at
a cut-off, where rounding may decide whether it is kept: its score within tolerance of a
score threshold or of the lowest score of the other output. Every other output (mmseg's
logits ``output`` (B, C, H, W)) is compared element by element.
"""
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

DETECTION_OUTPUTS = ('dets', 'labels')


class Difference(NamedTuple):
    """The largest |backend - PyTorch| of one quantity, and whether every element was
    within ``atol + rtol * |PyTorch|``."""
    name: str
    max_abs: float
    within: bool


class Comparison(NamedTuple):
    """What :func:`compare_outputs` found on one image."""
    differences: List[Difference]
    problems: List[str]  # what does not match, in words
    detections: Optional[Tuple[int, int]] = None  # (backend's, PyTorch's) count

    @property
    def ok(self) -> bool:
        return not self.problems and all(d.within for d in self.differences)

    def max_abs(self, name: str) -> float:
        return next(d.max_abs for d in self.differences if d.name == name)


def difference(name: str, got: torch.Tensor, expected: torch.Tensor, atol: float,
               rtol: float) -> Difference:
    """:class:`Difference` of two tensors of one shape (0 when both are empty)."""
    got, expected = got.double(), expected.double()
    if not expected.numel():
        return Difference(name, 0., True)
    gap = (got - expected).abs()
    return Difference(name, gap.max().item(),
                      bool((gap <= atol + rtol * expected.abs()).all()))


def pair_detections(dets: torch.Tensor, labels: torch.Tensor, ref_dets: torch.Tensor,
                    ref_labels: torch.Tensor):
    """Indices (i, j) pairing detection i of the backend with j of PyTorch.

    dets (N, 5), labels (N,), ref_dets (M, 5), ref_labels (M,). Only equal labels pair;
    among pairings, the least sum of max |box, score difference|.
    """
    cost = (dets[:, None].double() - ref_dets[None].double()).abs().amax(-1)  # (N, M)
    other = labels[:, None] != ref_labels[None]
    big = cost.max().item() * (len(dets) + len(ref_dets)) + 1 if cost.numel() else 1.
    rows, cols = linear_sum_assignment(cost.masked_fill(other, big).numpy())
    keep = ~other[rows, cols].numpy()
    return rows[keep], cols[keep]


def at_cut_off(score: float, cut_offs: Sequence[float], atol: float, rtol: float) -> bool:
    return any(abs(score - c) <= atol + rtol * abs(c) for c in cut_offs)


def compare_detections(out: Dict[str, torch.Tensor], ref: Dict[str, torch.Tensor],
                       score_thresholds: Sequence[float], atol: float,
                       rtol: float) -> Comparison:
    """Detections of one image: ``out``/``ref`` hold ``dets`` (N, 5), ``labels`` (N,)
    and optionally ``masks`` (N, h, w); rows of score 0 (padding) are ignored."""
    out, ref = (filter_padding(o) for o in (out, ref))
    rows, cols = pair_detections(out['dets'], out['labels'], ref['dets'], ref['labels'])
    problems = []
    for side, outputs, other, paired in (('ONNX Runtime', out, ref, rows),
                                         ('PyTorch', ref, out, cols)):
        lowest = [other['dets'][:, 4].min().item()] if len(other['dets']) else []
        for k in sorted(set(range(len(outputs['dets']))) - set(paired.tolist())):
            score = outputs['dets'][k, 4].item()
            if not at_cut_off(score, list(score_thresholds) + lowest, atol, rtol):
                problems.append(f'{side} detection {k} (label {int(outputs["labels"][k])}, '
                                f'score {score:.4f}) has no partner')
    differences = [
        difference('boxes', out['dets'][rows, :4], ref['dets'][cols, :4], atol, rtol),
        difference('scores', out['dets'][rows, 4], ref['dets'][cols, 4], atol, rtol)]
    if 'masks' in out:
        differences.append(difference('masks', out['masks'][rows], ref['masks'][cols],
                                      atol, rtol))
    return Comparison(differences, problems, (len(out['dets']), len(ref['dets'])))


def filter_padding(outputs: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    keep = outputs['dets'][:, 4] > 0
    return {name: value[keep] for name, value in outputs.items()}


def compare_outputs(out: Dict[str, torch.Tensor], ref: Dict[str, torch.Tensor],
                    score_thresholds: Sequence[float] = (), atol: float = 1e-3,
                    rtol: float = 1e-3) -> List[Comparison]:
    """One :class:`Comparison` per image of the batch; ``out`` and ``ref`` map output
    names to batched tensors (detections as in :func:`compare_detections`)."""
    if set(out) != set(ref):
        raise ValueError(f'outputs differ: backend {sorted(out)}, PyTorch {sorted(ref)}')
    batch = len(next(iter(ref.values())))
    if all(name in out for name in DETECTION_OUTPUTS):
        return [compare_detections({k: v[i] for k, v in out.items()},
                                   {k: v[i] for k, v in ref.items()},
                                   score_thresholds, atol, rtol) for i in range(batch)]
    comparisons = []
    for i in range(batch):
        differences, problems = [], []
        for name in ref:
            if out[name][i].shape != ref[name][i].shape:
                problems.append(f'{name}: shape {tuple(out[name][i].shape)}, PyTorch\'s '
                                f'{tuple(ref[name][i].shape)}')
            else:
                differences.append(difference(name, out[name][i], ref[name][i], atol,
                                              rtol))
        comparisons.append(Comparison(differences, problems))
    return comparisons


def as_tensors(outputs: Dict[str, object]) -> Dict[str, torch.Tensor]:
    """Outputs as CPU tensors (ONNX Runtime may give numpy arrays)."""
    return {name: torch.from_numpy(v) if isinstance(v, np.ndarray) else v.detach().cpu()
            for name, v in outputs.items()}
