# mmseg segmentors: logits (B, C, H, W) at the input size.
_base_ = ['./onnx_config.py']

codebase_config = dict(type='mmseg', task='Segmentation', with_argmax=False)
