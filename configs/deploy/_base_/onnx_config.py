# ONNX export through mmdeploy (its TorchScript-based exporter); opset 17 has
# LayerNormalization and RoiAlign with aligned=True (opset 16), which Mask R-CNN needs.
onnx_config = dict(
    type='onnx',
    export_params=True,
    keep_initializers_as_inputs=False,
    opset_version=17,
    save_file='end2end.onnx',
    input_names=['input'],
    output_names=['output'],
    input_shape=None,  # None: the size of the image given to the export
    optimize=False)
backend_config = dict(type='onnxruntime')
