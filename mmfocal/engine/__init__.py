from .hooks import ResumableCheckpointHook, use_resumable_checkpoints

__all__ = ['ResumableCheckpointHook', 'use_resumable_checkpoints']
