"""Tiny datasets in the COCO and ADE20K directory layouts, drawn with numpy.

Each image holds a few filled rectangles on a noisy background; the rectangles are the
COCO instances (box and polygon) and the ADE20K label regions, so a model can in principle
learn them, and the metrics have real matches to count.
"""
import json
import os
import os.path as osp

import cv2
import numpy as np

# COCO's 80 category ids (not contiguous, as in COCO); the images use the first three.
COCO_IDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
            24, 25, 27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47,
            48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70,
            72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90]
USED_CATEGORIES = 3


def coco_categories():
    from mmdet.datasets import CocoDataset
    return list(zip(COCO_IDS, CocoDataset.METAINFO['classes']))


def _rectangles(rng, height, width, count):
    """``count`` boxes (x0, y0, x1, y1) with sides of 1/4..1/2 of the image."""
    boxes = []
    for _ in range(count):
        w = int(rng.integers(width // 4, width // 2))
        h = int(rng.integers(height // 4, height // 2))
        x0 = int(rng.integers(0, width - w))
        y0 = int(rng.integers(0, height - h))
        boxes.append((x0, y0, x0 + w, y0 + h))
    return boxes


def _image(rng, height, width):
    return rng.integers(0, 60, size=(height, width, 3), dtype=np.uint8)


def make_coco(root, num_train=4, num_val=2, size=(96, 128), seed=0):
    """Write ``root/{train2017,val2017}/*.jpg`` and ``root/annotations/instances_*.json``."""
    rng = np.random.default_rng(seed)
    height, width = size
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    ann_id = 1
    for split, count in (('train2017', num_train), ('val2017', num_val)):
        os.makedirs(osp.join(root, split), exist_ok=True)
        images, annotations = [], []
        for _ in range(count):
            image_id = len(images) + 1 + (1000 if split == 'val2017' else 0)
            image = _image(rng, height, width)
            for x0, y0, x1, y1 in _rectangles(rng, height, width, 2):
                k = int(rng.integers(USED_CATEGORIES))
                cat_id = COCO_IDS[k]
                image[y0:y1, x0:x1] = 80 + 40 * k
                annotations.append(
                    dict(id=ann_id, image_id=image_id, category_id=cat_id, iscrowd=0,
                         bbox=[x0, y0, x1 - x0, y1 - y0], area=(x1 - x0) * (y1 - y0),
                         segmentation=[[x0, y0, x1, y0, x1, y1, x0, y1]]))
                ann_id += 1
            name = f'{image_id:012d}.jpg'
            cv2.imwrite(osp.join(root, split, name), image)
            images.append(dict(id=image_id, file_name=name, height=height, width=width))
        categories = [dict(id=i, name=n, supercategory='none') for i, n in coco_categories()]
        with open(osp.join(root, 'annotations', f'instances_{split}.json'), 'w') as f:
            json.dump(dict(images=images, annotations=annotations, categories=categories), f)
    return root


def make_ade20k(root, num_train=4, num_val=2, size=(64, 64), seed=0):
    """Write ``root/{images,annotations}/{training,validation}/``: jpg images and png
    label maps with 0 = ignore and 1..150 = classes (``reduce_zero_label=True``)."""
    rng = np.random.default_rng(seed)
    height, width = size
    for split, count in (('training', num_train), ('validation', num_val)):
        os.makedirs(osp.join(root, 'images', split), exist_ok=True)
        os.makedirs(osp.join(root, 'annotations', split), exist_ok=True)
        for i in range(count):
            image = _image(rng, height, width)
            label = np.ones((height, width), np.uint8)  # class 1 (wall) as background
            for x0, y0, x1, y1 in _rectangles(rng, height, width, 2):
                cls = int(rng.integers(2, 6))
                label[y0:y1, x0:x1] = cls
                image[y0:y1, x0:x1] = 40 * cls
            label[:2] = 0  # a strip of ignored pixels
            name = f'ADE_{split}_{i:08d}'
            cv2.imwrite(osp.join(root, 'images', split, name + '.jpg'), image)
            cv2.imwrite(osp.join(root, 'annotations', split, name + '.png'), label)
    return root
