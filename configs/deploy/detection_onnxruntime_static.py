# Detection for ONNX Runtime, the graph fixed at the export image's size after the test
# pipeline (other sizes must be resized to it).
_base_ = ['./_base_/detection.py']
