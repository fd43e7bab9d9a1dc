"""`import mmfocal` registers the backbones in mmdet's, mmseg's and (where it is installed)
mmpretrain's registries."""
import importlib
import subprocess
import sys
import textwrap

import pytest
import torch
from mmengine.config import Config

import mmfocal  # noqa: F401
from mmfocal import registry


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg'])
def test_build_by_name_in_both_toolboxes(scope):
    models = importlib.import_module(f'{scope}.registry').MODELS
    backbone = models.build(dict(type='FocalNet', embed_dims=16, depths=(1, 1, 1, 1),
                                 out_indices=(1, 3)))
    assert type(backbone).__name__ == 'FocalNet'
    assert [o.shape[1] for o in backbone(torch.randn(1, 3, 32, 32))] == [32, 128]


def test_config_file_with_custom_imports_builds_a_detector(tmp_path):
    cfg_file = tmp_path / 'retinanet_focalnet.py'
    cfg_file.write_text(textwrap.dedent("""
        _base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
        custom_imports = dict(imports=['mmfocal'], allow_failed_imports=False)
        model = dict(backbone=dict(_delete_=True, type='FocalNet', embed_dims=16,
                                   depths=(1, 1, 1, 1), out_indices=(1, 2, 3)),
                     neck=dict(in_channels=[32, 64, 128]))
    """))
    cfg = Config.fromfile(str(cfg_file))
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    detector = MODELS.build(cfg.model)
    feats = detector.extract_feat(torch.randn(1, 3, 64, 64))
    assert [f.shape[1] for f in feats] == [256] * 5


def test_config_file_with_custom_imports_builds_a_segmentor(tmp_path):
    cfg_file = tmp_path / 'upernet_focalnet.py'
    cfg_file.write_text(textwrap.dedent("""
        _base_ = 'mmseg::_base_/models/upernet_swin.py'
        custom_imports = dict(imports=['mmfocal'], allow_failed_imports=False)
        norm_cfg = dict(type='BN', requires_grad=True)
        model = dict(
            data_preprocessor=dict(size=(64, 64)),
            backbone=dict(_delete_=True, type='FocalNet', embed_dims=16, depths=(1, 1, 1, 1)),
            decode_head=dict(in_channels=[16, 32, 64, 128], channels=32, num_classes=5,
                             norm_cfg=norm_cfg),
            auxiliary_head=dict(in_channels=64, channels=16, num_classes=5, norm_cfg=norm_cfg))
    """))
    cfg = Config.fromfile(str(cfg_file))
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    register_all_modules()
    segmentor = MODELS.build(cfg.model).eval()
    with torch.no_grad():
        logits = segmentor(torch.randn(1, 3, 64, 64), mode='tensor')
    assert logits.shape == (1, 5, 16, 16)


def test_registration_is_guarded_per_toolbox(monkeypatch):
    real_import = importlib.import_module

    def without(missing):
        def fake(name, *args):
            if name == missing:
                raise ImportError(name)
            return real_import(name, *args)
        return fake

    class OnlyDet(torch.nn.Module):
        pass

    monkeypatch.setattr(importlib, 'import_module', without('mmseg.registry'))
    registry.register_backbone(OnlyDet)
    from mmdet.registry import MODELS as DET
    from mmseg.registry import MODELS as SEG
    assert DET.get('OnlyDet') is OnlyDet
    assert 'OnlyDet' not in SEG.module_dict

    def neither(name, *args):
        raise ImportError(name)

    monkeypatch.setattr(importlib, 'import_module', neither)
    with pytest.raises(ImportError, match='needs mmdet, mmsegmentation or mmpretrain'):
        registry.register_backbone(type('Orphan', (torch.nn.Module, ), {}))


def test_without_mmpretrain_nothing_else_changes():
    """Where mmpretrain cannot be imported (not installed, or without torchvision),
    ``import mmfocal`` still registers both backbones in mmdet and mmseg, and a
    classification config fails with a message naming the extra to install."""
    script = textwrap.dedent("""
        import sys
        sys.modules['mmpretrain'] = None  # import mmpretrain raises ImportError
        import mmfocal
        from mmfocal.registry import toolbox_of
        from mmdet.registry import MODELS as DET
        from mmseg.registry import MODELS as SEG
        print([r.get(n).__name__ for r in (DET, SEG) for n in ('FocalNet', 'FocalTransformer')])
        try:
            toolbox_of(dict(default_scope='mmpretrain'))
        except ImportError as exc:
            print(exc)
    """)
    out = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[0] == str(['FocalNet', 'FocalTransformer'] * 2)
    assert 'the config runs in mmpretrain' in out[1]
    assert "pip install '.[cls]' in mmfocal's clone" in out[1]
