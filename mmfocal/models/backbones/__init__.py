from .focal_transformer import FocalTransformer
from .focalnet import FocalNet

__all__ = ['FocalNet', 'FocalTransformer']
