"""Write the demo's synthetic datasets in the COCO and ADE20K layouts.

Each image shows 1-4 shapes of four classes (circle, square, triangle, star) on a textured
background (noise, stripes, checkers or a gradient, plus clutter lines and pixel noise).
Every class has its own hue range and outline; sizes, rotations, shading and positions vary.
The output is a deterministic function of the arguments (image ``i`` of a split is drawn
from its own random stream), so two runs write identical files.

Layout (``--out data/demo``)::

    coco/train2017/000000000001.jpg ...      coco/val2017/...
    coco/annotations/instances_{train,val}2017.json
        polygons for squares, triangles and stars; compressed RLE for circles
    ade/ADEChallengeData2016/images/{training,validation}/ADE_{train,val}_00000001.jpg
    ade/ADEChallengeData2016/annotations/{training,validation}/ADE_{train,val}_00000001.png
        0 = unlabelled (a one-pixel band inside each shape's outline, ignored through
        ``reduce_zero_label``), 1 = background, 2..5 = circle, square, triangle, star

    python tools/dataset_converters/make_demo_data.py --out data/demo
"""
import argparse
import json
import math
import os
import os.path as osp

import cv2
import numpy as np
from pycocotools import mask as mask_utils

SHAPES = ('circle', 'square', 'triangle', 'star')
SEG_CLASSES = ('background', ) + SHAPES
# Hue centre (OpenCV scale 0..180: red, blue, green, yellow) of each shape class; objects
# vary by +-10 around it.
HUES = {'circle': 0, 'square': 115, 'triangle': 65, 'star': 30}
SPLITS = {'train': ('train2017', 'training'), 'val': ('val2017', 'validation')}
SUBPIXEL = 4  # fractional bits of cv2.fillPoly coordinates


def background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A textured (h, w, 3) uint8 BGR background of low to medium saturation."""
    base = cv2.cvtColor(np.uint8([[[rng.integers(0, 180), rng.integers(0, 110),
                                    rng.integers(70, 220)]]]), cv2.COLOR_HSV2BGR)
    base = base.reshape(1, 1, 3).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    kind = rng.integers(4)
    if kind == 0:  # smooth noise
        small = rng.normal(0, 1, (max(h // 16, 2), max(w // 16, 2))).astype(np.float32)
        texture = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    elif kind == 1:  # stripes
        angle, period = rng.uniform(0, math.pi), rng.uniform(6, 24)
        texture = np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * 2 * math.pi / period)
    elif kind == 2:  # checkers
        cell = int(rng.integers(6, 20))
        texture = ((xx // cell + yy // cell) % 2) * 2 - 1
    else:  # gradient
        angle = rng.uniform(0, 2 * math.pi)
        texture = (xx * math.cos(angle) + yy * math.sin(angle)) / max(h, w) * 2
    tint = rng.uniform(0.5, 1.5, 3).astype(np.float32)
    img = base * (1 + rng.uniform(0.15, 0.35) * texture[..., None] * tint)
    for _ in range(rng.integers(0, 4)):  # clutter lines in random colours
        p1, p2 = rng.integers(0, [w, h]), rng.integers(0, [w, h])
        cv2.line(img, tuple(int(v) for v in p1), tuple(int(v) for v in p2),
                 tuple(float(v) for v in rng.integers(0, 256, 3)),
                 int(rng.integers(1, 3)), cv2.LINE_AA)
    return img


def outline(shape: str, rng: np.random.Generator, cx: float, cy: float,
            radius: float) -> np.ndarray:
    """(N, 2) polygon of a rotated square, triangle or star of circumradius ``radius``."""
    corners = {'square': 4, 'triangle': 3, 'star': 10}[shape]
    angles = rng.uniform(0, 2 * math.pi) + np.arange(corners) * 2 * math.pi / corners
    radii = np.full(corners, radius)
    if shape == 'star':
        radii[1::2] *= rng.uniform(0.4, 0.55)
    polygon = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1)
    return np.round(polygon, 2)  # as written to the json


def colour(shape: str, rng: np.random.Generator) -> np.ndarray:
    """A BGR colour (3,) float32 drawn around the class hue."""
    hsv = np.uint8([[[(HUES[shape] + rng.integers(-10, 11)) % 180, rng.integers(150, 256),
                      rng.integers(140, 256)]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR).reshape(3).astype(np.float32)


def draw_scene(rng: np.random.Generator, h: int, w: int):
    """Draw one scene.

    Returns:
        img (h, w, 3) uint8 BGR; objects: list of dicts with ``shape``, ``mask`` (h, w) bool,
        ``polygon`` ((N, 2) float or None for circles) and ``bbox`` [x, y, w, h];
        labels (h, w) uint8 in the ADE20K convention of this module's docstring.
    """
    img = background(rng, h, w)
    labels = np.ones((h, w), np.uint8)
    objects, boxes = [], []
    for _ in range(rng.integers(1, 5)):
        shape = SHAPES[rng.integers(len(SHAPES))]
        for _attempt in range(20):  # place without overlapping earlier shapes
            radius = rng.uniform(0.08, 0.2) * min(h, w)
            cx = rng.uniform(radius + 1, w - radius - 1)
            cy = rng.uniform(radius + 1, h - radius - 1)
            box = (cx - radius, cy - radius, cx + radius, cy + radius)
            if all(box[2] + 2 < b[0] or b[2] + 2 < box[0] or box[3] + 2 < b[1]
                   or b[3] + 2 < box[1] for b in boxes):
                break
        else:
            continue
        boxes.append(box)
        aa = np.zeros((h, w), np.uint8)
        if shape == 'circle':
            polygon = None
            mask = np.zeros((h, w), np.uint8)
            centre = (int(cx * 2**SUBPIXEL), int(cy * 2**SUBPIXEL))
            r = int(radius * 2**SUBPIXEL)
            cv2.circle(mask, centre, r, 1, -1, cv2.LINE_8, SUBPIXEL)
            cv2.circle(aa, centre, r, 255, -1, cv2.LINE_AA, SUBPIXEL)
        else:
            polygon = outline(shape, rng, cx, cy, radius)
            # The annotation is the polygon as pycocotools rasterises it (what mmdet and
            # the COCO metric read); the drawing is anti-aliased, in cv2's pixel-centre
            # coordinates (COCO's are pixel corners).
            mask = mask_utils.decode(mask_utils.merge(
                mask_utils.frPyObjects([polygon.reshape(-1).tolist()], h, w)))
            pts = np.round((polygon - 0.5) * 2**SUBPIXEL).astype(np.int32)[None]
            cv2.fillPoly(aa, pts, 255, cv2.LINE_AA, SUBPIXEL)
        mask = mask.astype(bool)
        if mask.sum() < 16:
            continue
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        slope = rng.uniform(-1, 1, 2)
        shade = 1 + 0.25 * ((xx - cx) * slope[0] + (yy - cy) * slope[1]) / radius
        fill = colour(shape, rng)[None, None] * shade[..., None]
        alpha = (aa.astype(np.float32) / 255)[..., None]
        img = img * (1 - alpha) + fill * alpha
        labels[mask] = SEG_CLASSES.index(shape) + 1
        inner = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        labels[mask & ~inner] = 0
        ys, xs = np.nonzero(mask)
        bbox = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
                int(ys.max() - ys.min() + 1)]
        objects.append(dict(shape=shape, mask=mask, polygon=polygon, bbox=bbox))
    img = img + rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), objects, labels


def coco_segmentation(obj: dict):
    """COCO ``segmentation`` field: a polygon list, or compressed RLE for circles."""
    if obj['polygon'] is not None:
        return [obj['polygon'].reshape(-1).tolist()]
    rle = mask_utils.encode(np.asfortranarray(obj['mask'].astype(np.uint8)))
    return dict(size=[int(v) for v in rle['size']], counts=rle['counts'].decode('ascii'))


def write_coco(out: str, split: str, num: int, size: int, seed: int) -> None:
    folder, _ = SPLITS[split]
    os.makedirs(osp.join(out, folder), exist_ok=True)
    os.makedirs(osp.join(out, 'annotations'), exist_ok=True)
    images, annotations = [], []
    for i in range(num):
        rng = np.random.default_rng([seed, 0, list(SPLITS).index(split), i])
        img, objects, _ = draw_scene(rng, size, size)
        image_id = i + 1
        name = f'{image_id:012d}.jpg'
        cv2.imwrite(osp.join(out, folder, name), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
        images.append(dict(id=image_id, file_name=name, height=size, width=size))
        for obj in objects:
            annotations.append(dict(
                id=len(annotations) + 1, image_id=image_id,
                category_id=SHAPES.index(obj['shape']) + 1,
                segmentation=coco_segmentation(obj), area=int(obj['mask'].sum()),
                bbox=obj['bbox'], iscrowd=0))
    categories = [dict(id=k + 1, name=name, supercategory='shape')
                  for k, name in enumerate(SHAPES)]
    with open(osp.join(out, 'annotations', f'instances_{folder}.json'), 'w') as f:
        json.dump(dict(images=images, annotations=annotations, categories=categories), f)


def write_ade(out: str, split: str, num: int, size: int, seed: int) -> None:
    _, folder = SPLITS[split]
    for sub in ('images', 'annotations'):
        os.makedirs(osp.join(out, sub, folder), exist_ok=True)
    for i in range(num):
        rng = np.random.default_rng([seed, 1, list(SPLITS).index(split), i])
        img, _, labels = draw_scene(rng, size, size)
        name = f'ADE_{split}_{i + 1:08d}'
        cv2.imwrite(osp.join(out, 'images', folder, name + '.jpg'), img,
                    [cv2.IMWRITE_JPEG_QUALITY, 92])
        cv2.imwrite(osp.join(out, 'annotations', folder, name + '.png'), labels)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='data/demo', help='output root')
    parser.add_argument('--task', choices=('det', 'seg', 'both'), default='both')
    parser.add_argument('--num-train', type=int, default=320)
    parser.add_argument('--num-val', type=int, default=80)
    parser.add_argument('--size', type=int, default=160, help='image side in pixels')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    if args.num_train < 1 or args.num_val < 1:
        parser.error(f'--num-train and --num-val must be >= 1, got {args.num_train} '
                     f'and {args.num_val}')
    if not 48 <= args.size <= 2048:
        parser.error(f'--size must be in 48..2048 pixels, got {args.size}')
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    for split, num in (('train', args.num_train), ('val', args.num_val)):
        if args.task in ('det', 'both'):
            write_coco(osp.join(args.out, 'coco'), split, num, args.size, args.seed)
        if args.task in ('seg', 'both'):
            write_ade(osp.join(args.out, 'ade', 'ADEChallengeData2016'), split, num,
                      args.size, args.seed)
    print(f'make_demo_data: wrote {args.num_train} train and {args.num_val} val images '
          f'({args.task}) under {args.out}')


if __name__ == '__main__':
    main()
