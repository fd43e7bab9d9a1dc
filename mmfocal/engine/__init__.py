from .hooks import ResumableCheckpointHook, use_resumable_checkpoints
from .precision import amp_fallback

__all__ = ['ResumableCheckpointHook', 'use_resumable_checkpoints', 'amp_fallback']
