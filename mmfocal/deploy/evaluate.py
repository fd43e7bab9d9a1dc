"""Evaluate an exported graph on a config's test set with the config's evaluator (COCO AP,
mIoU), through mmdeploy's backend model and test runner: what ``tools/test.py`` gives for
the PyTorch checkpoint, for the backend."""
import os.path as osp
from typing import Dict, Optional

from mmdeploy.apis import build_task_processor

from .export import load_configs


def evaluate(deploy_cfg: str, model_cfg: str, backend_model: str, work_dir: str,
             device: str = 'cpu', cfg_options: Optional[dict] = None) -> Dict[str, float]:
    """The metrics of ``backend_model`` (an ``end2end.onnx``) on the model config's
    ``test_dataloader`` with its ``test_evaluator``; logs go to ``work_dir``."""
    deploy, model = load_configs(deploy_cfg, model_cfg, cfg_options)
    if not osp.isfile(backend_model):
        raise FileNotFoundError(f'backend model not found: {backend_model}')
    model.work_dir = work_dir
    task = build_task_processor(model, deploy, device)
    backend = task.build_backend_model(
        [backend_model], data_preprocessor_updater=task.update_data_preprocessor)
    runner = task.build_test_runner(backend, work_dir)
    return runner.test()
