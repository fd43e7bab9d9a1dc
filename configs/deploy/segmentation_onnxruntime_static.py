# Semantic segmentation for ONNX Runtime at the export image's size after the test pipeline.
_base_ = ['./_base_/segmentation.py']
