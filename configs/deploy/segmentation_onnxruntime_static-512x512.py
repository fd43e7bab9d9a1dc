# Semantic segmentation for ONNX Runtime, 512x512 inputs (ADE20K's crop size).
_base_ = ['./_base_/segmentation.py']

onnx_config = dict(input_shape=[512, 512])
