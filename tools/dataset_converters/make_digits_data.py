"""Write scikit-learn's handwritten digits as an image-folder dataset that mmpretrain reads.

The 1,797 digits of ``sklearn.datasets.load_digits`` are real scans (8x8 pixels, 17 grey
levels, 0 = paper) shipped inside scikit-learn: nothing is downloaded. Each is scaled to
0..255 (ink bright, as in MNIST), upsampled to ``--size`` pixels (bicubic) and written as a
grey PNG. A stratified split with a fixed seed holds out ``--test-fraction`` of them
(default 20 %: 1,437 training and 360 test images).

Layout (``--out data/demo/digits``), read by mmpretrain's ``CustomDataset`` with
``data_prefix='train'`` or ``'test'`` (classes from the folder names, '0' to '9')::

    train/0/0000.png train/0/0010.png ... train/9/...
    test/0/...                                   ... test/9/...
    meta.json    classes, image size, split sizes and the seed

A file is named by the digit's index in ``load_digits``. The output is a deterministic
function of the arguments.

    python tools/dataset_converters/make_digits_data.py --out data/demo/digits
"""
import argparse
import json
import os
import os.path as osp
from typing import Dict, Tuple

import cv2
import numpy as np

CLASSES = tuple(str(d) for d in range(10))


def load_digits() -> Tuple[np.ndarray, np.ndarray]:
    """(1797, 8, 8) uint8 images in 0..255 (ink bright) and (1797,) int64 labels 0..9."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as exc:
        raise ImportError('the digits demo reads its images from scikit-learn: '
                          'pip install scikit-learn') from exc
    digits = sklearn_digits()
    scans = np.round(digits.images * (255 / 16)).clip(0, 255).astype(np.uint8)
    return scans, digits.target.astype(np.int64)


def split(labels: np.ndarray, test_fraction: float, seed: int) -> Dict[str, np.ndarray]:
    """{'train': indices, 'test': indices}: a stratified split, each part sorted."""
    from sklearn.model_selection import train_test_split
    train, test = train_test_split(np.arange(len(labels)), test_size=test_fraction,
                                   random_state=seed, stratify=labels)
    return dict(train=np.sort(train), test=np.sort(test))


def upsample(scan: np.ndarray, size: int) -> np.ndarray:
    """An (8, 8) uint8 scan -> (size, size) uint8, bicubic."""
    image = cv2.resize(scan.astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    return np.round(image).clip(0, 255).astype(np.uint8)


def write(out: str, size: int = 32, test_fraction: float = 0.2, seed: int = 0) -> dict:
    """Write the dataset under ``out``; returns the contents of meta.json."""
    scans, labels = load_digits()
    parts = split(labels, test_fraction, seed)
    for name, indices in parts.items():
        for label in CLASSES:
            os.makedirs(osp.join(out, name, label), exist_ok=True)
        for i in indices:
            path = osp.join(out, name, CLASSES[labels[i]], f'{i:04d}.png')
            cv2.imwrite(path, upsample(scans[i], size))
    meta = dict(classes=list(CLASSES), size=size, seed=seed, test_fraction=test_fraction,
                **{f'num_{name}': int(len(indices)) for name, indices in parts.items()})
    with open(osp.join(out, 'meta.json'), 'w') as f:
        json.dump(meta, f, indent=2)
    return meta


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='data/demo/digits', help='output root')
    parser.add_argument('--size', type=int, default=32, help='image side in pixels')
    parser.add_argument('--test-fraction', type=float, default=0.2,
                        help='share of the digits held out for testing')
    parser.add_argument('--seed', type=int, default=0, help='seed of the split')
    args = parser.parse_args(argv)
    if not 8 <= args.size <= 512:
        parser.error(f'--size must be in 8..512 pixels, got {args.size}')
    if not 0.05 <= args.test_fraction <= 0.5:
        parser.error(f'--test-fraction must be in 0.05..0.5, got {args.test_fraction}')
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    meta = write(args.out, args.size, args.test_fraction, args.seed)
    print(f'make_digits_data: wrote {meta["num_train"]} train and {meta["num_test"]} test '
          f'digits ({args.size}x{args.size}) under {args.out}')
    return meta


if __name__ == '__main__':
    main()
