from .focal_maps_hook import FocalMapsHook
from .hooks import ResumableCheckpointHook, use_resumable_checkpoints
from .precision import amp_fallback
from .runner import build_runner, enable_amp, end_distributed, load_config

__all__ = ['FocalMapsHook', 'ResumableCheckpointHook', 'use_resumable_checkpoints', 'amp_fallback',
           'build_runner', 'enable_amp', 'end_distributed', 'load_config']
