"""mmfocal: FocalNet and Focal Transformer backbones for mmdetection and mmsegmentation.

``import mmfocal`` lets mmfocal's checkpoint readers and, on torch >= 2.6,
``torch.load(weights_only=True)`` read the checkpoints mmengine writes (see
:func:`mmfocal.compat.allow_mmengine_checkpoints`), then registers the backbones
in every installed toolbox's ``MODELS`` and :class:`~mmfocal.engine.FocalMapsHook` in
mmengine's ``HOOKS``, and, where mmpretrain is installed, the ImageNet configs in its model
hub (:func:`mmfocal.registry.register_model_index`: ``mmpretrain.get_model(name)``).
Importing it again (also after a failed import) does the same.
"""
from .compat import allow_mmengine_checkpoints

allow_mmengine_checkpoints()

from .engine import *  # noqa: E402,F401,F403
from .models import *  # noqa: E402,F401,F403
from .registry import register_model_index  # noqa: E402
from .version import __version__  # noqa: E402,F401

register_model_index()
