# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""A small deterministic classification dataset in ImageNet's on-disk format.

:func:`make_imagenet_shapes` writes what mmpretrain's ``ImageNet`` dataset class reads
for the real ImageNet-1k (``data_root`` with ``split='train'`` / ``'val'``)::

    train/<synset>/<synset>_<i>.png     one folder per class, synsets in label order
    val/val_<i>.png                     a flat folder
    meta/train.txt                      "<synset>/<file> <label>" per line
    meta/val.txt                        "<file> <label>" per line

Each image shows one shape of :data:`~mmdist.datasets.synthetic.SHAPE_CLASSES` (its
label) drawn as the COCO/Cityscapes shapes datasets draw it: random size, aspect ratio,
place and colour on a noisy gradient background, with the same optional ``texture``,
``distractors`` and ``color_noise`` knobs, and optionally ``clutter``: smaller shapes of
other classes behind the labelled one (a ring or diamond in the corner of a rectangle
image), so that a bigger network has more to learn than a small one.
"""
import os
import os.path as osp
from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np

from .synthetic import SHAPE_CLASSES, _background, _color, _draw, _draw_distractor


def imagenet_shapes_synsets() -> Sequence[str]:
    """Folder names of the classes, in label order (sorted, as ImageNet's synsets)."""
    return tuple(f'n{k:08d}' for k in range(len(SHAPE_CLASSES)))


def _random_box(rng: np.random.Generator, height: int, width: int, min_size: int,
                max_size: int) -> Tuple[int, int, int, int]:
    """An (x0, y0, x1, y1) box of side ``min_size``-``max_size`` inside the image."""
    w = int(rng.integers(min_size, max_size + 1))
    h = int(np.clip(w * rng.uniform(0.6, 1.6), min_size, max_size))
    x0 = int(rng.integers(0, max(width - w, 0) + 1))
    y0 = int(rng.integers(0, max(height - h, 0) + 1))
    return x0, y0, x0 + w, y0 + h


def render_shape_image(rng: np.random.Generator, label: int, image_size: Tuple[int, int],
                       object_size: Tuple[int, int], texture: float = 0.0,
                       distractors: int = 0, color_noise: Optional[float] = None,
                       clutter: int = 0) -> np.ndarray:
    """One (H, W, 3) uint8 BGR image whose largest shape is of class ``label``.

    Clutter shapes (up to ``clutter``, of other classes) are at most half the labelled
    shape's minimum side and are drawn before it, so it may occlude them.
    """
    height, width = image_size
    min_size, max_size = object_size
    img = _background(rng, height, width, texture)
    for _ in range(int(rng.integers(0, distractors + 1)) if distractors else 0):
        _draw_distractor(img, rng, max_size)
    scratch = np.zeros((height, width), np.uint8)
    small = max(min_size // 2, 2)
    for _ in range(int(rng.integers(0, clutter + 1)) if clutter else 0):
        other = int(rng.choice([k for k in range(len(SHAPE_CLASSES)) if k != label]))
        box = _random_box(rng, height, width, max(small // 2, 2), small)
        _draw(img, scratch, other, box, _color(rng, other, color_noise), rng, texture)
    box = _random_box(rng, height, width, min_size, max_size)
    _draw(img, scratch, label, box, _color(rng, label, color_noise), rng, texture)
    return img


def make_imagenet_shapes(root: str,
                         train_per_class: int = 4,
                         val_per_class: int = 2,
                         image_size: Tuple[int, int] = (32, 32),
                         object_size: Tuple[int, int] = (12, 28),
                         seed: int = 0,
                         texture: float = 0.0,
                         distractors: int = 0,
                         color_noise: Optional[float] = None,
                         clutter: int = 0) -> Dict[str, int]:
    """Write an ImageNet-format shapes classification dataset (lossless PNG).

    Args:
        root: output folder (the ``data_root`` of mmpretrain's ``ImageNet``).
        train_per_class: training images per class.
        val_per_class: held-out images per class (labels interleaved 0, 1, ..., 5, 0, ...).
        image_size: (height, width) in pixels.
        object_size: (min, max) side of the labelled shape in pixels.
        seed: random seed; the same arguments give the same files.
        texture, distractors, color_noise: as in
            :func:`~mmdist.datasets.make_coco_shapes`.
        clutter: at most this many smaller shapes of other classes per image; 0: none.

    Returns:
        split name -> number of images written.
    """
    height, width = image_size
    min_size, max_size = object_size
    if not 2 <= min_size <= max_size <= min(height, width):
        raise ValueError(f'object_size must be (min, max) with 2 <= min <= max <= '
                         f'min(image_size)={min(height, width)}, got {object_size!r}')
    for name, value in (('train_per_class', train_per_class),
                        ('val_per_class', val_per_class), ('distractors', distractors),
                        ('clutter', clutter)):
        if int(value) != value or value < 0:
            raise ValueError(f'{name} must be a non-negative integer, got {value!r}')
    synsets = imagenet_shapes_synsets()
    options = dict(image_size=(height, width), object_size=(min_size, max_size),
                   texture=texture, distractors=distractors, color_noise=color_noise,
                   clutter=clutter)
    os.makedirs(osp.join(root, 'meta'), exist_ok=True)

    rng = np.random.default_rng([seed, 0])
    lines = []
    for label, synset in enumerate(synsets):
        os.makedirs(osp.join(root, 'train', synset), exist_ok=True)
        for i in range(train_per_class):
            name = f'{synset}_{i:05d}.png'
            cv2.imwrite(osp.join(root, 'train', synset, name),
                        render_shape_image(rng, label, **options))
            lines.append(f'{synset}/{name} {label}\n')
    with open(osp.join(root, 'meta', 'train.txt'), 'w', encoding='utf-8') as f:
        f.writelines(lines)

    rng = np.random.default_rng([seed, 1])
    os.makedirs(osp.join(root, 'val'), exist_ok=True)
    lines = []
    for i in range(val_per_class * len(synsets)):
        label = i % len(synsets)
        name = f'val_{i:05d}.png'
        cv2.imwrite(osp.join(root, 'val', name), render_shape_image(rng, label, **options))
        lines.append(f'{name} {label}\n')
    with open(osp.join(root, 'meta', 'val.txt'), 'w', encoding='utf-8') as f:
        f.writelines(lines)
    return dict(train=train_per_class * len(synsets), val=val_per_class * len(synsets))
