"""The large-model systems (FocalNet-L/XL/H with DINO, FocalNet-L with Mask2Former): every
config builds at full size with the metafile's parameter count and takes one training step
(its own optimizer, gradient checkpointing as configured) on one small image."""
import numpy as np
import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmengine.structures import InstanceData, PixelData

from _helpers import focalnet_variants
from test_configs import MODELS_INDEX, build, fresh, load

SYSTEMS = [m['Config'] for m in MODELS_INDEX if 'Paper Table' not in m['Metadata']]
# slow: the DINO detectors (FocalNet-XL / H are 0.4 / 0.75 G parameters: one AdamW step
# needs 6 / 12 GB) and Mask2Former's panoptic one; the quick tier builds the ADE20K one
HEAVY = ('dino_', '_coco_panoptic')


def image_size(cfg) -> int:
    """DINO selects 900 queries among the encoder's tokens: 128x128 gives 1364 tokens at
    strides 4..64, but only 340 at strides 8..64 (4 scales), 256x256 1360."""
    return 256 if cfg.model.get('num_feature_levels') == 4 else 128


def tiny_data(cfg):
    """The data preprocessors pad to the configs' training crops (1024 / 640): pad to 32."""
    preprocessor = cfg.model.data_preprocessor
    preprocessor.pop('batch_augments', None)
    if 'size' in preprocessor:
        preprocessor.size = (image_size(cfg), ) * 2
    return cfg


def batch(scope, size):
    """One image with two rectangles (boxes, masks, and a label map with stuff around)."""
    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.integers(0, 255, (3, size, size), dtype=np.uint8))
    boxes = torch.tensor([[8., 16., 72., 90.], [40., 20., 120., 110.]]) * size / 128
    masks = np.zeros((2, size, size), dtype=np.uint8)
    for mask, (x0, y0, x1, y1) in zip(masks, boxes.int().tolist()):
        mask[y0:y1, x0:x1] = 1
    meta = dict(img_shape=(size, size), ori_shape=(size, size), pad_shape=(size, size),
                scale_factor=(1., 1.))
    if scope == 'mmseg':
        from mmseg.structures import SegDataSample
        label_map = np.full((size, size), 7, dtype=np.int64)
        label_map[masks[0] == 1], label_map[masks[1] == 1] = 12, 40
        sample = SegDataSample(metainfo=meta)
        sample.gt_sem_seg = PixelData(data=torch.from_numpy(label_map)[None])
        return dict(inputs=[image], data_samples=[sample])
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    sample = DetDataSample(metainfo=meta)
    sample.gt_instances = InstanceData(bboxes=boxes, labels=torch.tensor([0, 5]),
                                       masks=BitmapMasks(masks, size, size))
    stuff = np.full((size, size), 100, dtype=np.int64)  # a stuff class around the things
    stuff[masks[0] == 1], stuff[masks[1] == 1] = 0, 5
    sample.gt_sem_seg = PixelData(sem_seg=torch.from_numpy(stuff)[None])
    return dict(inputs=[image], data_samples=[sample])


@pytest.mark.parametrize('config', [
    pytest.param(c, marks=pytest.mark.slow) if any(h in c for h in HEAVY) else c
    for c in SYSTEMS])
def test_builds_and_trains_one_step(config):
    cfg = tiny_data(fresh(config))
    torch.manual_seed(0)
    model = build(cfg)
    model.init_weights()  # as the runner does: the heads' initial biases and offsets
    meta = next(m for m in MODELS_INDEX if m['Config'] == config)['Metadata']
    params = sum(p.numel() for p in model.parameters()) / 1e6
    assert abs(params - meta['Parameters (M)']) < 0.1, params
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    watched = {name: p.detach().clone() for name, p in model.named_parameters()
               if name in ('backbone.patch_embed.proj.weight', 'backbone.norm3.weight')}
    model.train()
    losses = model.train_step(batch(cfg.default_scope, image_size(cfg)), wrapper)
    assert losses and all(torch.isfinite(v).all() for v in losses.values()), losses
    for name, value in model.named_parameters():
        if name in watched:
            assert not torch.equal(value, watched[name]), f'{name} not updated'


# The checkpoint each system's backbone starts from: the authors' ImageNet-22K models, whose
# structure is configs/_base_/models/focalnet.py's variant of the same name.
CHECKPOINTS = {
    'l_fl3': 'focalnet_large_lrf_384.pth',
    'l_fl4': 'focalnet_large_lrf_384_fl4.pth',
    'xl_fl4': 'focalnet_xlarge_lrf_384_fl4.pth',
    'h_fl4': 'hf-hub:timm/focalnet_huge_fl4.ms_in22k@3656de2b341e473ad338da5f707ecd5ba48934e7',
}
#: the FocalNet structure flags, False where a variant leaves them out
FLAGS = ('use_conv_embed', 'use_postln', 'use_layerscale', 'normalize_modulator',
         'use_postln_in_modulation')


@pytest.mark.parametrize('config', SYSTEMS)
def test_system_recipe(config):
    cfg = load(config)
    name = config.rsplit('/', 1)[1][:-3]
    variant = next(v for v in CHECKPOINTS if f'_focalnet_{v}_' in name)
    checkpoint, structure = CHECKPOINTS[variant], focalnet_variants()[variant]
    backbone = cfg.model.backbone
    for key in ('embed_dims', 'depths', 'focal_levels', 'focal_windows') + FLAGS:
        value = backbone.get(key, False)
        assert (tuple(value) if isinstance(value, list) else value) == \
            structure.get(key, False), key
    source = backbone.init_cfg.checkpoint
    hub = source.startswith('hf-hub:')
    assert source == checkpoint if hub else source.endswith('/' + checkpoint)
    assert 'blob.core.windows.net' not in source  # the authors' old host refuses access
    assert cfg.custom_imports == dict(imports=['mmfocal'], allow_failed_imports=False)
    channels = [structure['embed_dims'] * 2**i for i in backbone.out_indices]
    if not name.startswith('dino'):
        head = cfg.model.get('decode_head') or cfg.model.panoptic_head
        assert head.in_channels == channels
        assert backbone.drop_path_rate == 0.3
        return
    # DINO: the levels agree from the backbone to the decoder
    scales = int(name.split('_')[1][0])
    assert backbone.out_indices == ((1, 2, 3) if scales == 4 else (0, 1, 2, 3))
    assert cfg.model.neck.in_channels == channels
    assert cfg.model.neck.bias is True  # the DINO codebase's input projections
    assert (cfg.model.num_feature_levels == cfg.model.neck.num_outs == scales ==
            cfg.model.encoder.layer_cfg.self_attn_cfg.num_levels ==
            cfg.model.decoder.layer_cfg.cross_attn_cfg.num_levels)
    assert backbone.with_cp
    epochs = 36 if name.endswith('_3x') else 12
    assert cfg.train_cfg.max_epochs == epochs
    assert cfg.param_scheduler[0].milestones == ([27, 33] if epochs == 36 else [11])
    assert backbone.drop_path_rate == (0.4 if epochs == 36 else 0.3)
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys.backbone.lr_mult == 0.1


def test_flops_of_mask2former_segmentor_include_its_head():
    """get_flops.py runs mmseg's Mask2Former head, which needs data samples."""
    from get_flops import complexity
    from mmengine.analysis import FlopAnalyzer
    cfg = fresh('configs/segmentation/mask2former_focalnet_l_fl4_640x640_160k_ade20k.py')
    cfg.model.backbone.depths = (1, 1, 1, 1)
    _, flops = complexity(cfg, (128, 128))
    backbone = build(cfg).backbone.eval()
    with torch.no_grad():
        backbone_flops = FlopAnalyzer(backbone, (torch.zeros(1, 3, 128, 128), )).total()
    # pixel decoder (6 deformable encoder layers) and 9 decoder layers on 100 queries
    assert flops > backbone_flops + 1e9, (flops, backbone_flops)
