"""FocalMapsHook: the backbone's pictures (:mod:`mmfocal.visualization`) while training."""
import random
from typing import Dict, List, Optional, Sequence, Union

import cv2
import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ..registry import register_hook
from ..visualization import check_index, display_image, drawing_of, gallery, style_of


@register_hook
class FocalMapsHook(Hook):
    """Every ``interval`` training iterations (or epochs, with ``by_epoch``) and after the
    last, draw the backbone's pictures and hand them to the runner's visualizer
    (``add_image``), so that they land in the config's visualisation backends (local files,
    TensorBoard, W&B...).

    What the backbone's class names in ``pictures`` (:func:`mmfocal.visualization.drawing_of`).
    FocalNet: the panel of gates and modulator of one block per stage over fixed images of
    the validation set, run through the validation pipeline and ``model.test_step``; with
    several images, one row per image (the Keras tutorial's TrainMonitor with
    ``stages=[1], style='tutorial'``). Focal Transformer: the position-bias tables of every
    stage.

    Drawing runs without gradients, puts the model back in its train/eval mode and
    restores the random states of ``random``, numpy and torch, so the training is the
    same with and without the hook. Enable it from a config::

        custom_hooks = [dict(type='FocalMapsHook', interval=500)]

    Args:
        interval: iterations (epochs with ``by_epoch``) between two drawings.
        image_index: index of the validation image, or a list of them (FocalNet).
        stages: stages drawn (FocalNet default: the last; Focal Transformer: all).
        block: block of each stage (default the last).
        by_epoch: count ``interval`` in epochs (an epoch-based training loop only).
        style: how FocalNet's maps are drawn, a key of
            :data:`mmfocal.visualization.STYLES`: 'paper' or 'tutorial'.
        display_size: draw images whose shorter side is smaller enlarged to at least this
            many pixels (nearest pixels), e.g. CIFAR's 32x32 images.
    """
    priority = 'VERY_LOW'

    def __init__(self, interval: int = 500, image_index: Union[int, Sequence[int]] = 0,
                 stages: Optional[Sequence[int]] = None, block: int = -1,
                 by_epoch: bool = False, style: str = 'paper',
                 display_size: Optional[int] = None):
        if not isinstance(interval, int) or interval < 1:
            raise ValueError(f'FocalMapsHook: interval must be a positive int, got {interval!r}')
        indices = [image_index] if isinstance(image_index, int) else list(image_index)
        if not indices or any(not isinstance(i, int) or i < 0 for i in indices):
            raise ValueError('FocalMapsHook: image_index must be a non-negative int or a '
                             f'non-empty list of them, got {image_index!r}')
        if display_size is not None and (not isinstance(display_size, int) or
                                         display_size < 1):
            raise ValueError('FocalMapsHook: display_size must be None or a positive int, got '
                             f'{display_size!r}')
        style_of(style)
        self.interval, self.image_indices, self.block = interval, indices, block
        self.stages = None if stages is None else list(stages)
        self.by_epoch, self.style, self.display_size = bool(by_epoch), style, display_size

    def before_train(self, runner) -> None:
        if self.by_epoch:
            from mmengine.runner import EpochBasedTrainLoop
            if not isinstance(runner.train_loop, EpochBasedTrainLoop):
                raise ValueError('FocalMapsHook: by_epoch=True needs an epoch-based training '
                                 f'loop, the config has {type(runner.train_loop).__name__}')
        if drawing_of(self._model(runner).backbone).needs_image:
            dataset = self._val_dataset(runner)
            for index in self.image_indices:
                check_index('FocalMapsHook image_index', index, len(dataset))

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.by_epoch:
            return
        due = self.every_n_train_iters(runner, self.interval) or self.is_last_train_iter(runner)
        if due and is_main_process():  # the visualizer writes from the main process only
            self.draw(runner, step=runner.iter + 1)

    def after_train_epoch(self, runner) -> None:
        if not self.by_epoch:
            return
        due = self.every_n_epochs(runner, self.interval) or \
            runner.epoch + 1 >= runner.train_loop.max_epochs
        if due and is_main_process():
            self.draw(runner, step=runner.iter)

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
        drawing = drawing_of(model.backbone)
        if not drawing.needs_image:
            pictures = drawing.draw(model.backbone, None, None, self.stages, self.block,
                                    self.style)
            return {name: pictures[picture] for name, picture in drawing.logged} or pictures
        from mmengine.dataset import pseudo_collate
        dataset = self._val_dataset(runner)
        drawn: List[Dict[str, np.ndarray]] = []
        for index in self.image_indices:
            image = display_image(self.dataset_image(dataset, index), self.display_size)
            batch = pseudo_collate([dataset[index]])
            drawn.append(drawing.draw(model.backbone, lambda b=batch: model.test_step(b)[0], image,
                                      self.stages, self.block, self.style))
        if len(drawn) == 1:
            return {name: drawn[0][picture] for name, picture in drawing.logged} or drawn[0]
        # several images: one row each in every logged picture
        logged = drawing.logged or tuple((name, name) for name in drawn[0])
        return {name: gallery([d[picture] for d in drawn]) for name, picture in logged}

    @staticmethod
    def dataset_image(dataset, index: int) -> np.ndarray:
        """Image ``index`` of ``dataset`` as BGR uint8 (H, W, 3): read from its ``img_path``,
        or, for datasets held in memory (mmpretrain's CIFAR10/100, MNIST), its ``img``
        array, which those datasets keep in RGB (or grey) order."""
        info = dataset.get_data_info(index)
        if info.get('img_path'):
            image = cv2.imread(info['img_path'])
            if image is None:
                raise FileNotFoundError(f'FocalMapsHook: cannot read {info["img_path"]}')
            return image
        if info.get('img') is None:
            raise ValueError(f'FocalMapsHook: validation image {index} has neither img_path '
                             'nor img')
        image = np.ascontiguousarray(info['img'])
        if image.ndim == 2 or image.shape[-1] == 1:
            return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
        return cv2.cvtColor(image, cv2.COLOR_RGB2BGR)

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
