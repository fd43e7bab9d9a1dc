"""DINO detectors trained in the DINO codebase (FocalNet-DINO) as mmdet 3 ``DINO`` weights.

The DINO codebase (IDEA-Research/DINO, FocalNet/FocalNet-DINO) saves ``{'model': state}``
with the backbone under ``backbone.0.`` (FocalNet's own key names, which mmfocal keeps),
the input projections, the deformable transformer under ``transformer.`` and the
prediction heads at the top level. :data:`KEY_MAP` renames every key to mmdet 3.3's
``DINO`` (``ChannelMapper`` neck with ``bias=True``, ``DINOHead`` with box refinement and
two-stage heads). A key outside the map is an error: nothing is dropped silently except
the decoder's second reference to the shared heads (checked equal to the first).

Class rows: the DINO codebase indexes its COCO class rows by category id (91 rows, the
denoising label embedding one more), mmdet by contiguous label (80 rows). With
``class_rows='coco'`` the rows of :data:`COCO_CATEGORY_IDS` are selected in mmdet's
order; with ``class_rows='all'`` (e.g. the Objects365 checkpoint) the rows are kept and
the label embedding loses its last row, which training never indexes.
"""
import argparse
import re
from typing import Dict, List, Optional, Tuple

import torch

from .checkpoint import CheckpointError, compare_state_dicts, read_checkpoint

StateDict = Dict[str, torch.Tensor]

# COCO 2017's 80 category ids in mmdet's label order (CocoDataset sorts the ids).
COCO_CATEGORY_IDS = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
    27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77,
    78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90)
COCO_ROWS = 91  # class rows of a COCO model in the DINO codebase: category ids 0..90
CLASS_ROWS_CHOICES = ('coco', 'all')


def _reg(m: re.Match) -> str:
    """MLP ``layers.{i}`` -> mmdet's Sequential(Linear, ReLU, Linear, ReLU, Linear) ``{2i}``."""
    return str(2 * int(m['i']))


# (DINO-codebase key pattern, mmdet key template). Templates are ``str.format`` strings
# over the pattern's named groups plus ``enc`` (index of the encoder's heads in mmdet's
# branches = number of decoder layers), ``extra`` (index among the neck's extra convs)
# and ``reg`` (index in mmdet's regression Sequential). ``None``: a duplicate, dropped.
KEY_MAP: List[Tuple[str, Optional[str]]] = [
    (r'backbone\.0\.(?P<rest>.+)', 'backbone.{rest}'),
    (r'input_proj\.(?P<l>\d+)\.0\.(?P<p>weight|bias)', '{neck}.conv.{p}'),
    (r'input_proj\.(?P<l>\d+)\.1\.(?P<p>weight|bias)', '{neck}.gn.{p}'),
    (r'transformer\.level_embed', 'level_embed'),
    (r'transformer\.encoder\.layers\.(?P<n>\d+)\.self_attn\.(?P<rest>.+)',
     'encoder.layers.{n}.self_attn.{rest}'),
    (r'transformer\.encoder\.layers\.(?P<n>\d+)\.norm1\.(?P<p>weight|bias)',
     'encoder.layers.{n}.norms.0.{p}'),
    (r'transformer\.encoder\.layers\.(?P<n>\d+)\.norm2\.(?P<p>weight|bias)',
     'encoder.layers.{n}.norms.1.{p}'),
    (r'transformer\.(?P<c>en|de)coder\.layers\.(?P<n>\d+)\.linear1\.(?P<p>weight|bias)',
     '{c}coder.layers.{n}.ffn.layers.0.0.{p}'),
    (r'transformer\.(?P<c>en|de)coder\.layers\.(?P<n>\d+)\.linear2\.(?P<p>weight|bias)',
     '{c}coder.layers.{n}.ffn.layers.1.{p}'),
    (r'transformer\.decoder\.layers\.(?P<n>\d+)\.self_attn\.(?P<rest>.+)',
     'decoder.layers.{n}.self_attn.attn.{rest}'),
    (r'transformer\.decoder\.layers\.(?P<n>\d+)\.cross_attn\.(?P<rest>.+)',
     'decoder.layers.{n}.cross_attn.{rest}'),
    (r'transformer\.decoder\.layers\.(?P<n>\d+)\.norm2\.(?P<p>weight|bias)',
     'decoder.layers.{n}.norms.0.{p}'),  # after self-attention
    (r'transformer\.decoder\.layers\.(?P<n>\d+)\.norm1\.(?P<p>weight|bias)',
     'decoder.layers.{n}.norms.1.{p}'),  # after cross-attention
    (r'transformer\.decoder\.layers\.(?P<n>\d+)\.norm3\.(?P<p>weight|bias)',
     'decoder.layers.{n}.norms.2.{p}'),  # after the FFN
    (r'transformer\.decoder\.(?P<rest>norm\..+|ref_point_head\..+)', 'decoder.{rest}'),
    (r'transformer\.tgt_embed\.weight', 'query_embedding.weight'),
    (r'transformer\.enc_output\.(?P<p>weight|bias)', 'memory_trans_fc.{p}'),
    (r'transformer\.enc_output_norm\.(?P<p>weight|bias)', 'memory_trans_norm.{p}'),
    (r'class_embed\.(?P<k>\d+)\.(?P<p>weight|bias)', 'bbox_head.cls_branches.{k}.{p}'),
    (r'bbox_embed\.(?P<k>\d+)\.layers\.(?P<i>\d)\.(?P<p>weight|bias)',
     'bbox_head.reg_branches.{k}.{reg}.{p}'),
    (r'transformer\.enc_out_class_embed\.(?P<p>weight|bias)',
     'bbox_head.cls_branches.{enc}.{p}'),
    (r'transformer\.enc_out_bbox_embed\.layers\.(?P<i>\d)\.(?P<p>weight|bias)',
     'bbox_head.reg_branches.{enc}.{reg}.{p}'),
    (r'label_enc\.weight', 'dn_query_generator.label_embedding.weight'),
    (r'transformer\.decoder\.(?P<rest>(class|bbox)_embed\..+)', None),
]
_COMPILED = [(re.compile(p + '$'), t) for p, t in KEY_MAP]
CLASS_KEYS = re.compile(r'^bbox_head\.cls_branches\.\d+\.|^dn_query_generator\.')


def read_dino_checkpoint(path: str) -> dict:
    """:func:`~mmfocal.models.checkpoint.read_checkpoint` of a DINO-codebase checkpoint.
    Its training checkpoints also hold the command line (``'args'``, an
    ``argparse.Namespace`` of plain values) beside the optimizer state: that one class is
    allowed besides mmfocal's."""
    return read_checkpoint(path, extra=[argparse.Namespace])


def model_state(checkpoint) -> StateDict:
    """The model's state dict from a loaded DINO-codebase checkpoint (``{'model': ...}``,
    possibly beside optimizer state; a data-parallel ``module.`` prefix is removed)."""
    state = checkpoint.get('model', checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not state or not all(
            isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(
            'not a DINO-codebase checkpoint: expected a dict of tensors under \'model\', '
            f'got {type(state).__name__}')
    return {re.sub(r'^module\.', '', k): v for k, v in state.items()}


def _neck_names(state: StateDict) -> Dict[str, str]:
    """``input_proj.{l}`` -> ``neck.convs.{l}`` for the 1x1 projections of backbone
    outputs, ``neck.extra_convs.{l - n}`` for the strided 3x3 ones after them."""
    levels = sorted(int(m[1]) for k in state
                    if (m := re.match(r'input_proj\.(\d+)\.0\.weight$', k)))
    inputs = [lvl for lvl in levels if state[f'input_proj.{lvl}.0.weight'].shape[-1] == 1]
    if inputs != list(range(len(inputs))) or levels != list(range(len(levels))):
        raise CheckpointError(
            f'input projections {levels} with 1x1 convolutions at {inputs}: expected the '
            'backbone levels first (1x1), then the extra levels (strided 3x3)')
    return {str(lvl): f'neck.convs.{lvl}' if lvl in inputs else
            f'neck.extra_convs.{lvl - len(inputs)}' for lvl in levels}


def rename(key: str, fields: dict) -> Tuple[bool, Optional[str]]:
    """(matched, mmdet key or None for a dropped duplicate) for one DINO-codebase key.

    ``fields``: ``enc`` (the encoder heads' branch index) and ``neck`` (input projection
    index -> neck module, :func:`_neck_names`)."""
    for pattern, template in _COMPILED:
        m = pattern.match(key)
        if m:
            if template is None:
                return True, None
            groups = {k: v for k, v in m.groupdict().items() if v is not None}
            extra = dict(fields, reg=_reg(m) if 'i' in groups else '')
            if 'l' in groups:
                if groups['l'] not in fields['neck']:  # a GN without its conv
                    return False, None
                extra['neck'] = fields['neck'][groups['l']]
            return True, template.format(**groups, **extra)
    return False, None


def select_class_rows(value: torch.Tensor, key: str, class_rows: str) -> torch.Tensor:
    """Class rows of a head (rows = classes) or of the label embedding (one more row)."""
    is_label_embedding = key.startswith('dn_query_generator.')
    rows = value.shape[0] - int(is_label_embedding)
    if class_rows == 'all':
        return value[:rows].clone()
    if rows != COCO_ROWS:
        raise CheckpointError(
            f'{key}: {rows} class rows; class_rows=\'coco\' needs a COCO model indexed by '
            f'category id ({COCO_ROWS} rows). Use class_rows=\'all\' to keep the rows as '
            'they are (e.g. Objects365) with a config of that many classes')
    return value[list(COCO_CATEGORY_IDS)].clone()


def convert_dino(state: StateDict, class_rows: str = 'coco') -> StateDict:
    """A DINO-codebase state dict -> mmdet 3 ``DINO`` state dict.

    Raises :class:`CheckpointError` listing every key :data:`KEY_MAP` does not cover, and
    when a decoder copy of a shared head differs from the top-level head.
    """
    if class_rows not in CLASS_ROWS_CHOICES:
        raise CheckpointError(f'class_rows must be one of {CLASS_ROWS_CHOICES}, '
                              f'got {class_rows!r}')
    decoder_layers = {int(m[1]) for k in state
                      if (m := re.match(r'transformer\.decoder\.layers\.(\d+)\.', k))}
    fields = dict(enc=str(len(decoder_layers)), neck=_neck_names(state))
    out, unmapped = {}, []
    for key, value in state.items():
        matched, new_key = rename(key, fields)
        if not matched:
            unmapped.append(key)
        elif new_key is None:
            _check_duplicate(state, key)
        else:
            out[new_key] = (select_class_rows(value, new_key, class_rows)
                            if CLASS_KEYS.match(new_key) else value)
    if unmapped:
        raise CheckpointError(
            f'{len(unmapped)} keys of the checkpoint have no mmdet counterpart in '
            'mmfocal.models.dino_checkpoint.KEY_MAP:\n  ' + '\n  '.join(unmapped))
    return out


def _check_duplicate(state: StateDict, key: str) -> None:
    top = key[len('transformer.decoder.'):]
    if top not in state or not torch.equal(state[top], state[key]):
        raise CheckpointError(
            f'{key} is not a copy of {top}: the decoder\'s heads must be the shared '
            'top-level heads (dec_pred_class_embed_share / dec_pred_bbox_embed_share)')


def convert_dino_file(src: str, class_rows: str = 'coco',
                      target: Optional[StateDict] = None,
                      model_name: str = 'the model') -> StateDict:
    """Read ``src`` and convert it; with ``target`` (a model's state dict) every key and
    shape must match, or :class:`CheckpointError` lists the differences."""
    state = convert_dino(model_state(read_dino_checkpoint(src)), class_rows)
    if target is not None:
        problems = compare_state_dicts(state, target)
        if problems:
            raise CheckpointError(
                f'{src} does not fit {model_name} ({len(problems)} differences):\n  ' +
                '\n  '.join(problems))
    return state
