"""Registration of mmfocal's backbones into the toolboxes that are installed.

mmdet's and mmseg's ``MODELS`` registries are siblings under mmengine's root
registry, so a backbone must be registered in each of them to be found by
``type='FocalNet'`` in configs of either toolbox.
"""
import importlib

TOOLBOX_REGISTRIES = ('mmdet.registry', 'mmseg.registry')


def _installed_model_registries():
    registries = []
    for module_name in TOOLBOX_REGISTRIES:
        try:
            registries.append(importlib.import_module(module_name).MODELS)
        except ImportError:
            continue
    return registries


def register_backbone(cls):
    """Class decorator: register ``cls`` in every installed toolbox registry."""
    registries = _installed_model_registries()
    if not registries:
        raise ImportError(
            'mmfocal needs mmdet or mmsegmentation installed to register '
            f'{cls.__name__}; neither could be imported.')
    for registry in registries:
        registry.register_module(module=cls)
    return cls
