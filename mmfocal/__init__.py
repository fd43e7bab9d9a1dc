"""mmfocal: FocalNet and Focal Transformer backbones for mmdetection and mmsegmentation.

``import mmfocal`` registers the backbones in every installed toolbox's ``MODELS``.
"""
from .engine import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403
from .version import __version__  # noqa: F401
