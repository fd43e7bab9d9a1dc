"""Registration of mmfocal's backbones and hooks into the toolboxes that are installed.

mmdet's and mmseg's ``MODELS`` registries are siblings under mmengine's root
registry, so a backbone must be registered in each of them to be found by
``type='FocalNet'`` in configs of either toolbox. Hooks are registered in mmengine's root
``HOOKS``, which mmdet's and mmseg's ``HOOKS`` fall back to.
"""
import importlib

TOOLBOXES = ('mmdet', 'mmseg')
_BACKBONES = {}  # name -> the class registered last under it


def toolbox_of(cfg) -> str:
    """'mmdet' or 'mmseg': the toolbox a config runs in, from its ``default_scope``."""
    scope = cfg.get('default_scope')
    if scope not in TOOLBOXES:
        raise ValueError(f'default_scope of the config is {scope!r}; mmfocal\'s tools run '
                         f'configs with default_scope in {TOOLBOXES}')
    return scope


def _installed_model_registries():
    registries = []
    for toolbox in TOOLBOXES:
        try:
            registries.append(importlib.import_module(f'{toolbox}.registry').MODELS)
        except ImportError:
            continue
    return registries


def _register(registry, cls) -> None:
    """Register ``cls`` under its name; again (after a failed ``import mmfocal``, or a
    reload) it replaces mmfocal's earlier class of the same module and name, never
    another package's."""
    known = registry.module_dict.get(cls.__name__)
    same = known is not None and (known.__module__, known.__qualname__) == (
        cls.__module__, cls.__qualname__)
    if known is not None and not same:
        raise KeyError(f'{cls.__name__} is already registered in {registry.name} by '
                       f'{known.__module__}; mmfocal cannot register its own')
    registry.register_module(module=cls, force=same)


def register_backbone(cls):
    """Class decorator: register ``cls`` in every installed toolbox registry."""
    registries = _installed_model_registries()
    if not registries:
        raise ImportError(
            'mmfocal needs mmdet or mmsegmentation installed to register '
            f'{cls.__name__}; neither could be imported.')
    for registry in registries:
        _register(registry, cls)
    _BACKBONES[cls.__name__] = cls
    return cls


def registered_backbones() -> list:
    """mmfocal's backbone classes, in the order they were registered."""
    return list(_BACKBONES.values())


def register_hook(cls):
    """Class decorator: register ``cls`` in mmengine's ``HOOKS`` (found from every scope)."""
    from mmengine.registry import HOOKS
    _register(HOOKS, cls)
    return cls
