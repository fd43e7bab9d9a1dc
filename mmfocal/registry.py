"""Registration of mmfocal's backbones and hooks into the toolboxes that are installed.

mmdet's, mmseg's and mmpretrain's ``MODELS`` registries are siblings under mmengine's root
registry, so a backbone must be registered in each of them to be found by
``type='FocalNet'`` (and ``type='mmpretrain.FocalNet'``) in configs of any toolbox. Hooks
are registered in mmengine's root ``HOOKS``, which the toolboxes' ``HOOKS`` fall back to.
mmpretrain (image classification) is optional: ``pip install '.[cls]'`` in the clone.
"""
import importlib

TOOLBOXES = ('mmdet', 'mmseg', 'mmpretrain')
#: how to install each toolbox for mmfocal (the setup.cfg extra that brings it, installed
#: from the clone of mmfocal)
EXTRAS = {'mmdet': "pip install '.[det]' in mmfocal's clone (mmdet)",
          'mmseg': "pip install '.[seg]' in mmfocal's clone (mmsegmentation)",
          'mmpretrain': "pip install '.[cls]' in mmfocal's clone (mmpretrain, with the "
                        'torchvision built for your torch)'}
_BACKBONES = {}  # name -> the class registered last under it


def toolbox_of(cfg) -> str:
    """'mmdet', 'mmseg' or 'mmpretrain': the toolbox a config runs in, from its
    ``default_scope``; raises where that toolbox is not installed, saying how to install
    it."""
    scope = cfg.get('default_scope')
    if scope not in TOOLBOXES:
        raise ValueError(f'default_scope of the config is {scope!r}; mmfocal\'s tools run '
                         f'configs with default_scope in {TOOLBOXES}')
    try:
        _import_models_registry(scope)
    except ImportError as exc:
        raise ImportError(f'the config runs in {scope} (its default_scope), which cannot be '
                          f'imported ({exc}): {EXTRAS[scope]}') from exc
    return scope


def _import_models_registry(toolbox: str):
    """``toolbox``'s ``MODELS``. mmpretrain's only where its models import too (they need
    torchvision): a registry whose every build fails would only defer the error to the
    first classification config."""
    registry = importlib.import_module(f'{toolbox}.registry').MODELS
    if toolbox == 'mmpretrain':
        importlib.import_module('mmpretrain.models')
    return registry


def _installed_model_registries():
    registries = []
    for toolbox in TOOLBOXES:
        try:
            registries.append(_import_models_registry(toolbox))
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
            f'mmfocal needs mmdet, mmsegmentation or mmpretrain installed to register '
            f'{cls.__name__}; none could be imported.')
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


def _is_classification(model: dict) -> bool:
    return any(r.get('Task') == 'Image Classification' for r in model.get('Results') or [])


def register_model_index(metafile: str = None) -> list:
    """Register the image classification entries of ``metafile`` (default: mmfocal's
    metafile.yml, at the root of the source tree beside configs/) in mmpretrain's model hub,
    so that ``mmpretrain.list_models('focalnet*')`` lists them and
    ``mmpretrain.get_model(name, pretrained=True)`` builds them (with their weights).

    Their configs are paths relative to the metafile's folder: the source tree (a checkout,
    or ``pip install -e .``). Without that metafile, or where mmpretrain's models cannot be
    imported, nothing is registered. Names already in the hub for the same config are left
    as they are (``import mmfocal`` again adds nothing); a name another package registered
    for another config is skipped with a warning. Returns the names registered by this call.
    """
    import os
    if metafile is None:
        metafile = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'metafile.yml')
    if not os.path.isfile(metafile):
        return []
    try:
        _import_models_registry('mmpretrain')
        from mmpretrain.apis import ModelHub
    except ImportError:
        return []
    import tempfile
    import warnings

    import yaml
    root = os.path.dirname(os.path.abspath(metafile))
    with open(metafile) as f:
        index = yaml.load(f, Loader=getattr(yaml, 'CSafeLoader', yaml.SafeLoader))
    models = []
    for model in filter(_is_classification, index.get('Models') or []):
        known = ModelHub._models_dict.get(model['Name'].lower())
        if known is None:
            models.append(model)
        elif os.path.abspath(str(known.config)) != os.path.join(root, model['Config']):
            warnings.warn(f"mmpretrain's model hub already has a model {model['Name']} (config "
                          f'{known.config}); mmfocal does not register its own')
    if not models:
        return []
    collections = [dict(c, README=os.path.join(root, c['README'])) if 'README' in c else c
                   for c in index.get('Collections') or []]
    # ModelHub reads a model-index file: one of the classification entries alone
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, 'model-index.yml')
        with open(path, 'w') as f:
            yaml.safe_dump(dict(Collections=collections, Models=models), f, sort_keys=False)
        ModelHub.register_model_index(path, config_prefix=root)
    return [model['Name'] for model in models]
