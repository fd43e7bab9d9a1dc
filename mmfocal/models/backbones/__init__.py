from .focalnet import FocalNet

__all__ = ['FocalNet']
