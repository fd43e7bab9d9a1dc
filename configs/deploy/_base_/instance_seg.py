# mmdet instance segmentation: dets, labels and each detection's mask at the mask head's
# size (28x28 for Mask R-CNN), pasted into the image outside the graph.
_base_ = ['./detection.py']

onnx_config = dict(output_names=['dets', 'labels', 'masks'])
codebase_config = dict(post_processing=dict(export_postprocess_mask=False))
