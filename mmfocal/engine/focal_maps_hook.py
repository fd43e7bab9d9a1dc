"""FocalMapsHook: the backbone's pictures (:mod:`mmfocal.visualization`) while training."""
import random
from typing import Dict, Optional, Sequence

import cv2
import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ..registry import register_hook
from ..visualization import check_index, drawing_of


@register_hook
class FocalMapsHook(Hook):
    """Every ``interval`` training iterations (and after the last), draw the backbone's
    pictures and hand them to the runner's visualizer (``add_image``), so that they land
    in the config's visualisation backends (local files, TensorBoard, W&B...).

    What the backbone's class names in ``pictures`` (:func:`mmfocal.visualization.drawing_of`).
    FocalNet: the panel of gates and modulator of one block per stage over a fixed image of
    the validation set, run through the validation pipeline and ``model.test_step``.
    Focal Transformer: the position-bias tables of every stage.

    Drawing runs without gradients, puts the model back in its train/eval mode and
    restores the random states of ``random``, numpy and torch, so the training is the
    same with and without the hook. Enable it from a config::

        custom_hooks = [dict(type='FocalMapsHook', interval=500)]

    Args:
        interval: iterations between two drawings.
        image_index: index of the validation image (FocalNet).
        stages: stages drawn (FocalNet default: the last; Focal Transformer: all).
        block: block of each stage (default the last).
    """
    priority = 'VERY_LOW'

    def __init__(self, interval: int = 500, image_index: int = 0,
                 stages: Optional[Sequence[int]] = None, block: int = -1):
        if not isinstance(interval, int) or interval < 1:
            raise ValueError(f'FocalMapsHook: interval must be a positive int, got {interval!r}')
        if not isinstance(image_index, int) or image_index < 0:
            raise ValueError('FocalMapsHook: image_index must be a non-negative int, got '
                             f'{image_index!r}')
        self.interval, self.image_index, self.block = interval, image_index, block
        self.stages = None if stages is None else list(stages)

    def before_train(self, runner) -> None:
        if drawing_of(self._model(runner).backbone).needs_image:
            dataset = self._val_dataset(runner)
            check_index('FocalMapsHook image_index', self.image_index, len(dataset))

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        due = self.every_n_train_iters(runner, self.interval) or self.is_last_train_iter(runner)
        if due and is_main_process():  # the visualizer writes from the main process only
            self.draw(runner, step=runner.iter + 1)

    def draw(self, runner, step: int) -> Dict[str, np.ndarray]:
        """Draw and hand the pictures to the visualizer at ``step``; returns them."""
        model = self._model(runner)
        training = model.training
        states = random.getstate(), np.random.get_state(), torch.get_rng_state()
        try:
            model.eval()
            with torch.no_grad():
                pictures = self._pictures(runner, model)
        finally:
            model.train(training)
            random.setstate(states[0])
            np.random.set_state(states[1])
            torch.set_rng_state(states[2])
        for name, picture in pictures.items():
            runner.visualizer.add_image(name, picture[..., ::-1].copy(), step=step)
        return pictures

    def _pictures(self, runner, model) -> Dict[str, np.ndarray]:
        drawing, image, batch = drawing_of(model.backbone), None, None
        if drawing.needs_image:
            from mmengine.dataset import pseudo_collate
            dataset = self._val_dataset(runner)
            image = cv2.imread(dataset.get_data_info(self.image_index)['img_path'])
            batch = pseudo_collate([dataset[self.image_index]])
        pictures = drawing.draw(model.backbone, lambda: model.test_step(batch)[0], image,
                                self.stages, self.block)
        return {name: pictures[picture] for name, picture in drawing.logged} or pictures

    @staticmethod
    def _model(runner):
        return runner.model.module if is_model_wrapper(runner.model) else runner.model

    @staticmethod
    def _val_dataset(runner):
        loop = runner.val_loop
        if loop is None or not hasattr(loop, 'dataloader'):
            raise ValueError('FocalMapsHook draws FocalNet maps over a validation image: the '
                             'config needs val_dataloader and val_cfg')
        return loop.dataloader.dataset
