# Instance segmentation (Mask R-CNN) for ONNX Runtime at the export image's size.
_base_ = ['./_base_/instance_seg.py']
