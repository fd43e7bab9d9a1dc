"""The trained models the tests share: every paper system at the demo's size, trained once per
test run by tools/train.py on the demo's synthetic data, kept for the run.

A system's config is the paper's config (configs/detection, the demo configs for UperNet)
with the demo detector's data, schedule, backbone size, widths and numbers of RoIs, written
out whole (no ``--cfg-options`` to repeat): it evaluates on its own training images, where a
model of 24 iterations already scores. The store is shared by the processes of one run
(``pytest -n``): a model is trained by the first that asks for it, under a file lock, while
the others wait for it.
"""
import glob
import os
import os.path as osp
import sys
from typing import NamedTuple

from filelock import FileLock
from mmengine.config import Config

from _helpers import PYTHON, ROOT, run_checked, write_demo_data

sys.path.insert(0, osp.join(ROOT, 'tools', 'dataset_converters'))
import make_demo_data  # noqa: E402

#: the score threshold of the trained detectors (0.05 in the configs): a detector of 24
#: iterations scores low, and the graphs are compared on what it detects
LOW_SCORE = 0.01
MAX_DETECTIONS = 1000  # per image, of the one-stage detectors and their graphs
ITERATIONS = 24  # training iterations of every system: 24 epochs of one batch of 8 images
IMAGE_SIZE = 96
#: RoIs sampled per image by each R-CNN stage, and Sparse R-CNN's proposals (the demo: 128
#: and the configs 512 and 100): a quarter of the demo's trains in half the time, and better
SAMPLED_ROIS = 32


class System(NamedTuple):
    config: str  # under configs/
    task: str  # of its deploy configs (configs/deploy/TASK_onnxruntime_*.py)
    per_class_boxes: bool = False  # the config's box per class and RoI, or one per RoI


SYSTEMS = {
    # the demo detector: the Mask R-CNN FocalNet-T config shrunk (configs/detection)
    'mask_rcnn_focalnet': System('detection/demo_mask_rcnn_focalnet.py', 'instance-seg'),
    'mask_rcnn_focal_transformer': System('detection/mask_rcnn_focal_transformer_t_1x.py',
                                          'instance-seg'),
    'cascade_mask_rcnn_focalnet': System('detection/cascade_mask_rcnn_focalnet_t_3x.py',
                                         'instance-seg'),
    # the paper's boxes per class and RoI, whose graph keeps the best class's
    'cascade_mask_rcnn_focalnet_per_class_boxes': System(
        'detection/cascade_mask_rcnn_focalnet_t_3x.py', 'instance-seg', per_class_boxes=True),
    'cascade_mask_rcnn_focal_transformer': System(
        'detection/cascade_mask_rcnn_focal_transformer_t_3x.py', 'instance-seg'),
    'sparse_rcnn_focalnet': System('detection/sparse_rcnn_focalnet_t_3x.py', 'detection'),
    'sparse_rcnn_focal_transformer': System('detection/sparse_rcnn_focal_transformer_t_3x.py',
                                            'detection'),
    'atss_focalnet': System('detection/atss_focalnet_t_3x.py', 'detection'),
    'atss_focal_transformer': System('detection/atss_focal_transformer_t_3x.py', 'detection'),
    'retinanet_focal_transformer': System('detection/retinanet_focal_transformer_t_1x.py',
                                          'detection'),
    'upernet_focalnet': System('segmentation/demo_upernet_focalnet.py', 'segmentation'),
    'upernet_focal_transformer': System('segmentation/demo_upernet_focal_transformer.py',
                                        'segmentation'),
}

CHANNELS = {'in_channels', 'out_channels', 'feat_channels', 'conv_out_channels',
            'fc_out_channels', 'proposal_feature_channel', 'feedforward_channels'}
DEMO_WIDTHS = {256: 64, 1024: 256, 2048: 256}  # full config's widths -> the demo's
DEMO_BACKBONES = {
    'FocalNet': dict(embed_dims=32, depths=(1, 1, 2, 1), drop_path_rate=0., init_cfg=None),
    'FocalTransformer': dict(embed_dims=32, depths=(1, 1, 2, 1), num_heads=(1, 2, 4, 8),
                             drop_path_rate=0., init_cfg=None),
}
DEMO_DETECTOR = osp.join(ROOT, 'configs', 'detection', 'demo_mask_rcnn_focalnet.py')


class Trained(NamedTuple):
    config: str  # the whole config, data paths included
    checkpoint: str
    work_dir: str  # of the training (its log, its visualizer's pictures)
    images: list  # the training images the evaluation runs on


def shrink_heads(node):
    """Neck and head widths of a full config as the demo detector's, 4 classes."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in CHANNELS and isinstance(value, int):
                node[key] = DEMO_WIDTHS.get(value, value)
            elif key == 'num_classes':
                node[key] = len(make_demo_data.SHAPES)
            else:
                shrink_heads(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            shrink_heads(value)


def demo_detector_variant(cfg: Config) -> None:
    """A paper's detector config with the demo detector's data pipelines, schedule, backbone
    size, widths and numbers of RoIs (in place)."""
    demo = Config.fromfile(DEMO_DETECTOR)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader', 'val_evaluator',
                'test_evaluator', 'test_pipeline', 'train_cfg', 'param_scheduler',
                'optim_wrapper', 'default_hooks', 'randomness'):
        cfg[key] = demo[key]
    cfg.custom_hooks = []
    cfg.model.backbone.update(DEMO_BACKBONES[cfg.model.backbone.type])
    shrink_heads(cfg.model)
    cfg.model.neck.in_channels = [DEMO_BACKBONES['FocalNet']['embed_dims'] * 2**i
                                  for i in cfg.model.backbone.get('out_indices', range(4))]
    if cfg.model.get('rpn_head', {}).get('type') == 'RPNHead':
        cfg.model.test_cfg = demo.model.test_cfg
        cfg.model.train_cfg.rpn_proposal = demo.model.train_cfg.rpn_proposal
    elif 'rpn_head' in cfg.model:  # Sparse R-CNN
        cfg.model.rpn_head.num_proposals = SAMPLED_ROIS
        cfg.model.test_cfg.rcnn.max_per_img = 20
    if not cfg.model.get('roi_head', {}).get('mask_head'):
        cfg.val_evaluator.metric = cfg.test_evaluator.metric = 'bbox'
    if cfg.model.get('bbox_head', {}).get('type') == 'RetinaHead':
        # RetinaNet's head has no normalisation: at the demo's learning rate its class loss
        # diverges; at a tenth, 24 iterations leave every anchor at the prior score (ties
        # that NMS breaks differently in the graph and in PyTorch) unless its classifier
        # starts from weights of std 0.1 (the config's: 0.01), which sets anchors apart
        cfg.model.bbox_head.init_cfg = dict(
            type='Normal', layer='Conv2d', std=0.01,
            override=dict(type='Normal', name='retina_cls', std=0.1, bias_prob=0.01))
        cfg.optim_wrapper.optimizer.lr /= 10


def detection_data(cfg: Config, root: str) -> None:
    """The demo's COCO layout at ROOT at 96 pixels, evaluated on the training images; 24
    iterations, a short warm-up, SAMPLED_ROIS, boxes kept from LOW_SCORE (in place)."""
    ann = 'annotations/instances_train2017.json'
    for split in ('train', 'val', 'test'):
        loader = cfg[f'{split}_dataloader']
        loader.dataset.data_root = root + '/'
        loader.num_workers, loader.persistent_workers = 0, False
        if split != 'train':
            loader.dataset.ann_file, loader.dataset.data_prefix = ann, dict(img='train2017/')
            loader.dataset.pipeline[1].scale = (IMAGE_SIZE, IMAGE_SIZE)
    cfg.val_evaluator.ann_file = cfg.test_evaluator.ann_file = osp.join(root, ann)
    cfg.train_dataloader.dataset.pipeline[3].scale = (IMAGE_SIZE, IMAGE_SIZE)
    cfg.test_pipeline[1].scale = (IMAGE_SIZE, IMAGE_SIZE)
    cfg.train_cfg.update(max_epochs=ITERATIONS, val_interval=100)
    cfg.param_scheduler[0].end, cfg.param_scheduler[1].milestones = 5, [100]
    cfg.optim_wrapper.optimizer.lr *= 3  # the demo's 1e-3: 3x for 24 iterations
    cfg.default_hooks.checkpoint.interval, cfg.default_hooks.logger.interval = ITERATIONS, 4
    stages = cfg.model.get('train_cfg', {}).get('rcnn', [])
    for stage in stages if isinstance(stages, list) else [stages]:
        if 'sampler' in stage:
            stage.sampler.num = SAMPLED_ROIS
    test_cfg = cfg.model.test_cfg
    for stage in (test_cfg, test_cfg.get('rcnn', {})):
        if 'score_thr' in stage:
            stage.score_thr = LOW_SCORE
    if 'rcnn' not in test_cfg and 'max_per_img' in test_cfg:
        # every box above LOW_SCORE: a one-stage detector of 24 iterations scores hundreds of
        # anchors alike (RetinaNet's at its prior, 0.01), and a cut by count would keep a
        # different few of them in the graph and in PyTorch
        test_cfg.max_per_img = MAX_DETECTIONS


def class_agnostic_boxes(cfg: Config) -> None:
    """One box per RoI whatever the class (in place): mmdeploy's graph keeps only the box
    of each RoI's best class, mmdet one per class (docs/en/deployment.md, known limits),
    which moves a weakly trained model's AP."""
    bbox_heads = cfg.model.get('roi_head', {}).get('bbox_head', [])
    for bbox_head in bbox_heads if isinstance(bbox_heads, list) else [bbox_heads]:
        if 'reg_class_agnostic' in bbox_head:
            bbox_head.reg_class_agnostic = True


def segmentation_data(cfg: Config, root: str) -> None:
    """The demo's ADE20K layout at ROOT, 64-pixel crops, evaluated on the training images
    at 96 pixels; 24 iterations (in place)."""
    for split in ('train', 'val', 'test'):
        loader = cfg[f'{split}_dataloader']
        loader.dataset.data_root = root
        loader.num_workers, loader.persistent_workers = 0, False
        if split != 'train':
            loader.dataset.data_prefix = dict(img_path='images/training',
                                              seg_map_path='annotations/training')
            loader.dataset.pipeline[1].scale = (2 * IMAGE_SIZE, IMAGE_SIZE)
    cfg.model.data_preprocessor.size = (64, 64)
    cfg.train_dataloader.dataset.pipeline[2].scale = (2 * IMAGE_SIZE, IMAGE_SIZE)
    cfg.train_dataloader.dataset.pipeline[3].crop_size = (64, 64)
    cfg.test_pipeline[1].scale = (2 * IMAGE_SIZE, IMAGE_SIZE)
    cfg.train_cfg.update(max_iters=ITERATIONS, val_interval=1000)
    cfg.param_scheduler[0].end = 5
    cfg.param_scheduler[1].update(begin=5, end=ITERATIONS)
    cfg.optim_wrapper.optimizer.lr *= 3  # the demo's 1e-3: 3x for 24 iterations
    cfg.default_hooks.checkpoint.interval, cfg.default_hooks.logger.interval = ITERATIONS, 4


class TrainedModels:
    """name (a key of SYSTEMS) -> :class:`Trained`, trained on first use.

    Args:
        root: the store's folder, shared by the processes of the test run.
    """

    def __init__(self, root: str):
        self.root = root
        os.makedirs(root, exist_ok=True)

    def data(self, task: str) -> str:
        """The demo's data of ``task`` ('det': the COCO layout's root, 'seg': ADE20K's):
        8 training images of 96 pixels (and 2 validation images)."""
        out = osp.join(self.root, f'data_{task}')
        with FileLock(out + '.lock'):
            if not osp.isdir(out):
                write_demo_data(out + '.part', task, 8, 2, IMAGE_SIZE)
                os.rename(out + '.part', out)
        return osp.join(out, 'coco') if task == 'det' else osp.join(
            out, 'ade', 'ADEChallengeData2016')

    def config(self, name: str) -> str:
        """SYSTEMS[name]'s config at the demo's size on the demo's data, written whole."""
        system = SYSTEMS[name]
        cfg = Config.fromfile(osp.join(ROOT, 'configs', system.config))
        if system.task == 'segmentation':
            segmentation_data(cfg, self.data('seg'))
        else:
            if 'demo' not in system.config:
                demo_detector_variant(cfg)
            detection_data(cfg, self.data('det'))
            if not system.per_class_boxes:
                class_agnostic_boxes(cfg)
        path = osp.join(self.root, f'{name}.py')
        cfg.dump(path)
        return path

    def __call__(self, name: str) -> Trained:
        work_dir = osp.join(self.root, name)
        with FileLock(work_dir + '.lock'):
            config = osp.join(self.root, f'{name}.py')
            if not osp.isfile(osp.join(work_dir, 'last_checkpoint')):
                config = self.config(name)
                run_checked([PYTHON, 'tools/train.py', config, '--work-dir', work_dir])
        with open(osp.join(work_dir, 'last_checkpoint')) as f:
            checkpoint = f.read().strip()
        task = 'seg' if SYSTEMS[name].task == 'segmentation' else 'det'
        pattern = {'det': 'train2017/*.jpg', 'seg': 'images/training/*.jpg'}[task]
        images = sorted(glob.glob(osp.join(self.data(task), pattern)))
        return Trained(config, checkpoint, work_dir, images)
