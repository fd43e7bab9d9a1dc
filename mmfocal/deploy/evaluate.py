"""Evaluate an exported graph on a config's test set with the config's evaluator (COCO AP,
mIoU), through mmdeploy's backend model and test runner: what ``tools/test.py`` gives for
the PyTorch checkpoint, for the backend."""
import os.path as osp
from typing import Dict, Optional

import onnx
from mmdeploy.apis import build_task_processor

from .export import load_configs


def graph_batch_size(onnx_file: str) -> Optional[int]:
    """The batch size a graph's first input is fixed to (a static graph), None where the
    batch axis is dynamic."""
    graph = onnx.load(onnx_file, load_external_data=False).graph
    batch = graph.input[0].type.tensor_type.shape.dim[0]
    return batch.dim_value if batch.HasField('dim_value') else None


def evaluate(deploy_cfg: str, model_cfg: str, backend_model: str, work_dir: str,
             device: str = 'cpu', cfg_options: Optional[dict] = None,
             batch_size: int = 1) -> Dict[str, float]:
    """The metrics of ``backend_model`` (an ``end2end.onnx``) on the model config's
    ``test_dataloader`` in batches of ``batch_size`` (mmdeploy's default 1, whatever the
    config's) with its ``test_evaluator``; logs go to ``work_dir``."""
    deploy, model = load_configs(deploy_cfg, model_cfg, cfg_options)
    if not osp.isfile(backend_model):
        raise FileNotFoundError(f'backend model not found: {backend_model}')
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f'batch size must be an int >= 1, got {batch_size!r}')
    fixed = graph_batch_size(backend_model)
    if fixed is not None and batch_size > fixed:
        raise ValueError(f'batch size {batch_size}: {backend_model} is a static graph of '
                         f'batch {fixed}; evaluate it with batch size {fixed}, or export '
                         'with a dynamic deploy config (*_dynamic.py) for larger batches')
    model.test_dataloader.batch_size = batch_size
    model.work_dir = work_dir
    task = build_task_processor(model, deploy, device)
    backend = task.build_backend_model(
        [backend_model], data_preprocessor_updater=task.update_data_preprocessor)
    runner = task.build_test_runner(backend, work_dir)
    return runner.test()
