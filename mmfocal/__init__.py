"""mmfocal: FocalNet and Focal Transformer backbones for mmdetection and mmsegmentation.

``import mmfocal`` registers the backbones in every installed toolbox's ``MODELS`` and
:class:`~mmfocal.visualization.FocalMapsHook` in mmengine's ``HOOKS``, and lets
``torch.load(weights_only=True)`` read the checkpoints mmengine writes (see
:func:`mmfocal.models.checkpoint.allow_mmengine_checkpoints`).
"""
from .engine import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403
from .models.checkpoint import allow_mmengine_checkpoints
from .version import __version__  # noqa: F401
from .visualization import FocalMapsHook  # noqa: F401

allow_mmengine_checkpoints()
