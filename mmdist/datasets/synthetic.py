# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Small deterministic synthetic datasets in the official on-disk formats.

* :func:`make_coco_shapes`: COCO detection (``images/<split>/*.jpg`` +
  ``annotations/instances_<split>.json``).
* :func:`make_cityscapes_shapes`: Cityscapes segmentation
  (``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` and
  ``gtFine/<split>/<city>/*_gtFine_labelTrainIds.png``, 255 = ignore, and the
  ``*_gtFine_labelIds.png`` / ``*_instanceIds.png`` the official evaluation reads).

Images show filled shapes (one class per shape kind, :data:`SHAPE_CLASSES`) of several
sizes and colours on a noisy gradient background, later shapes occluding earlier ones.
Some classes are deliberately close (a ring is an ellipse with a hole, a diamond is a
rotated square), so small objects need more than colour and size to be told apart.
Optional knobs: ``texture`` (stripes of random period and orientation on every shape and
on the background) and ``distractors`` (unannotated strokes and arcs: parts of shapes that
are not objects) make the task harder, so that a bigger model has something to beat a
small one on; ``color_noise`` gives each class a typical colour (a cue that is learnt
quickly, ambiguous where the colours of two classes overlap); ``class_weights`` makes some
classes rarer than others (class imbalance). They are read by mmdet's ``CocoDataset`` and
mmseg's ``CityscapesDataset`` exactly as real data.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

#: Class names, in label order, of both synthetic datasets.
SHAPE_CLASSES = ('rectangle', 'ellipse', 'triangle', 'cross', 'ring', 'diamond')
#: Typical BGR colour of each class, used when ``color_noise`` is given.
CLASS_COLORS = ((60, 60, 220), (60, 200, 60), (220, 60, 60), (40, 200, 220), (200, 60, 200),
                (200, 200, 40))

Box = Tuple[int, int, int, int]


def _stripes(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A (H, W) float32 stripe pattern in [-1, 1] of random period, phase and angle."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(3.0, 12.0)
    phase = rng.uniform(0, 2 * np.pi)
    return np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period + phase)


def _background(rng: np.random.Generator, height: int, width: int,
                texture: float = 0.0) -> np.ndarray:
    """Smooth colour gradient plus pixel noise (and stripes), uint8 BGR (H, W, 3)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(60, 190, size=3)
    slope = rng.uniform(-0.6, 0.6, size=(2, 3))
    img = base + yy[..., None] * slope[0] * 64 / height + xx[..., None] * slope[1] * 64 / width
    img += rng.normal(0, 12, size=img.shape)
    if texture > 0:
        img += texture * _stripes(rng, height, width)[..., None] * rng.uniform(0.3, 1.0, 3)
    return np.clip(img, 0, 255).astype(np.uint8)


def _shape_mask(label: int, box: Box, shape: Tuple[int, int]) -> np.ndarray:
    """Boolean (H, W) mask of shape ``label`` inscribed in ``box``."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    axes = (max((x1 - x0) // 2, 1), max((y1 - y0) // 2, 1))
    mask = np.zeros(shape, np.uint8)
    name = SHAPE_CLASSES[label]
    if name == 'rectangle':
        cv2.rectangle(mask, (x0, y0), (x1 - 1, y1 - 1), 1, thickness=-1)
    elif name == 'ellipse':
        cv2.ellipse(mask, (cx, cy), axes, 0, 0, 360, 1, thickness=-1)
    elif name == 'triangle':
        pts = np.array([[cx, y0], [x0, y1 - 1], [x1 - 1, y1 - 1]], np.int32)
        cv2.fillPoly(mask, [pts], 1)
    elif name == 'cross':
        bar_w, bar_h = max((x1 - x0) // 3, 1), max((y1 - y0) // 3, 1)
        cv2.rectangle(mask, (x0, cy - bar_h // 2), (x1 - 1, cy + bar_h // 2), 1, -1)
        cv2.rectangle(mask, (cx - bar_w // 2, y0), (cx + bar_w // 2, y1 - 1), 1, -1)
    elif name == 'ring':
        cv2.ellipse(mask, (cx, cy), axes, 0, 0, 360, 1, thickness=-1)
        inner = (max(axes[0] // 2, 1), max(axes[1] // 2, 1))
        cv2.ellipse(mask, (cx, cy), inner, 0, 0, 360, 0, thickness=-1)
    else:  # diamond
        pts = np.array([[cx, y0], [x1 - 1, cy], [cx, y1 - 1], [x0, cy]], np.int32)
        cv2.fillPoly(mask, [pts], 1)
    return mask.astype(bool)


def _draw(img: np.ndarray, mask: np.ndarray, label: int, box: Box, color: Tuple[int, ...],
          rng: np.random.Generator, texture: float = 0.0) -> np.ndarray:
    """Draw shape ``label`` into ``img``, write ``label`` into ``mask``; return where drawn."""
    drawn = _shape_mask(label, box, mask.shape)
    fill = np.asarray(color, np.float32) + rng.normal(0, 10, size=img.shape)
    if texture > 0:
        fill += texture * _stripes(rng, *mask.shape)[..., None]
    img[drawn] = np.clip(fill[drawn], 0, 255).astype(np.uint8)
    mask[drawn] = label
    return drawn


def _draw_distractor(img: np.ndarray, rng: np.random.Generator, max_size: int) -> None:
    """An unannotated stroke or arc in a random colour (not an object, not labelled)."""
    height, width = img.shape[:2]
    color = tuple(int(c) for c in rng.integers(0, 256, size=3))
    thickness = int(rng.integers(1, 4))
    x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
    size = int(rng.integers(max(max_size // 4, 2), max_size + 1))
    if rng.random() < 0.5:
        angle = rng.uniform(0, 2 * np.pi)
        end = (int(x + size * np.cos(angle)), int(y + size * np.sin(angle)))
        cv2.line(img, (x, y), end, color, thickness)
    else:
        start = int(rng.integers(0, 360))
        cv2.ellipse(img, (x, y), (size // 2, max(size // 3, 1)), 0, start,
                    start + int(rng.integers(60, 200)), color, thickness)


def _color(rng: np.random.Generator, label: int, color_noise: Optional[float]) -> Tuple[int, ...]:
    """A uniformly random colour, or the class colour plus Gaussian noise."""
    if color_noise is None:
        return tuple(int(c) for c in rng.integers(0, 256, size=3))
    color = np.asarray(CLASS_COLORS[label], np.float64) + rng.normal(0, color_noise, size=3)
    return tuple(int(c) for c in np.clip(color, 0, 255))


def class_probabilities(class_weights: Optional[Sequence[float]]) -> Optional[np.ndarray]:
    """Validated ``class_weights`` normalised to probabilities (None stays None)."""
    if class_weights is None:
        return None
    try:
        weights = np.asarray(class_weights, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f'class_weights must be {len(SHAPE_CLASSES)} numbers, got '
                         f'{class_weights!r}') from err
    if weights.shape != (len(SHAPE_CLASSES), ):
        raise ValueError(f'class_weights must have one weight per shape class '
                         f'({len(SHAPE_CLASSES)}: {", ".join(SHAPE_CLASSES)}), got '
                         f'{class_weights!r}')
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise ValueError(f'class_weights must be finite and non-negative, got {class_weights!r}')
    if weights.sum() <= 0:
        raise ValueError(f'class_weights must not all be zero, got {class_weights!r}')
    return weights / weights.sum()


def _render(rng: np.random.Generator, height: int, width: int, max_objects: int,
            min_size: int, max_size: int, texture: float = 0.0, distractors: int = 0,
            color_noise: Optional[float] = None, class_probs: Optional[np.ndarray] = None):
    """One image: (BGR image, per-pixel label map with 255 = background, objects).

    ``class_probs``: probability of each shape class per object; None: uniform (drawn
    with ``rng.integers``, as before the option existed, so old outputs are unchanged).
    """
    img = _background(rng, height, width, texture)
    for _ in range(int(rng.integers(0, distractors + 1)) if distractors else 0):
        _draw_distractor(img, rng, max_size)
    labels = np.full((height, width), 255, np.uint8)
    instance = np.full((height, width), -1, np.int32)
    objects: List[Dict] = []
    for idx in range(int(rng.integers(1, max_objects + 1))):
        if class_probs is None:
            label = int(rng.integers(len(SHAPE_CLASSES)))
        else:
            label = int(rng.choice(len(SHAPE_CLASSES), p=class_probs))
        w = int(rng.integers(min_size, max_size + 1))
        h = int(np.clip(w * rng.uniform(0.6, 1.6), min_size, max_size))
        x0 = int(rng.integers(0, max(width - w, 1)))
        y0 = int(rng.integers(0, max(height - h, 1)))
        color = _color(rng, label, color_noise)
        drawn = _draw(img, labels, label, (x0, y0, x0 + w, y0 + h), color, rng, texture)
        instance[drawn] = idx
        objects.append(dict(label=label))
    # Boxes from the visible pixels of each object (later shapes occlude earlier ones).
    visible = []
    for idx, obj in enumerate(objects):
        ys, xs = np.nonzero(instance == idx)
        if len(xs) < 4:
            continue
        x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
        visible.append(dict(label=obj['label'], bbox=[x0, y0, x1 - x0, y1 - y0],
                            area=int(len(xs))))
    return img, labels, visible


def make_coco_shapes(root: str,
                     splits: Optional[Dict[str, int]] = None,
                     image_size: Tuple[int, int] = (128, 128),
                     max_objects: int = 4,
                     object_size: Tuple[int, int] = (12, 56),
                     seed: int = 0,
                     texture: float = 0.0,
                     distractors: int = 0,
                     color_noise: Optional[float] = None,
                     class_weights: Optional[Sequence[float]] = None) -> Dict[str, str]:
    """Write a COCO-format shapes dataset.

    Args:
        root: output folder; gets ``images/<split>/*.jpg`` and
            ``annotations/instances_<split>.json``.
        splits: split name -> number of images (default ``{'train': 8, 'val': 4}``).
        image_size: (height, width) in pixels.
        max_objects: at most this many objects per image (at least one).
        object_size: (min, max) object side in pixels.
        seed: random seed; the same arguments give the same files.
        texture: amplitude (grey levels) of the stripes on shapes and background; 0: none.
        distractors: at most this many unannotated strokes per image; 0: none.
        color_noise: None: every shape has a uniformly random colour (only its shape
            tells its class); a number: shapes of class k have :data:`CLASS_COLORS`\\[k]
            plus Gaussian noise of this standard deviation per channel (classes have
            typical colours, as in real scenes; with a large value they overlap and the
            shape decides).
        class_weights: relative probability of drawing each of the six
            :data:`SHAPE_CLASSES` for an object (e.g. ``(10, 10, 10, 10, 1, 1)``: ring and
            diamond ten times rarer); non-negative, not all zero. None (default): uniform,
            and the output is byte-identical to that of earlier versions.

    Returns:
        split name -> annotation file path.
    """
    class_probs = class_probabilities(class_weights)
    splits = splits or {'train': 8, 'val': 4}
    height, width = image_size
    out = {}
    categories = [dict(id=i + 1, name=name) for i, name in enumerate(SHAPE_CLASSES)]
    for split_idx, (split, num_images) in enumerate(sorted(splits.items())):
        rng = np.random.default_rng([seed, split_idx])
        os.makedirs(osp.join(root, 'images', split), exist_ok=True)
        os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
        images, annotations = [], []
        for image_id in range(1, num_images + 1):
            img, _, objects = _render(rng, height, width, max_objects, *object_size,
                                      texture=texture, distractors=distractors,
                                      color_noise=color_noise, class_probs=class_probs)
            file_name = f'{split}_{image_id:05d}.jpg'
            cv2.imwrite(osp.join(root, 'images', split, file_name), img,
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
            images.append(dict(id=image_id, file_name=file_name, height=height, width=width))
            for obj in objects:
                annotations.append(
                    dict(id=len(annotations) + 1, image_id=image_id,
                         category_id=obj['label'] + 1, bbox=obj['bbox'], area=obj['area'],
                         iscrowd=0, segmentation=[]))
        ann_file = osp.join(root, 'annotations', f'instances_{split}.json')
        with open(ann_file, 'w', encoding='utf-8') as f:
            json.dump(dict(images=images, annotations=annotations, categories=categories), f)
        out[split] = ann_file
    return out


#: Cityscapes label id of train ids 0-18 (cityscapesscripts' ``labels.py``); ignored
#: pixels (train id 255) get id 0, "unlabeled".
CITYSCAPES_LABEL_IDS = np.zeros(256, np.uint8)
CITYSCAPES_LABEL_IDS[:19] = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31,
                             32, 33)


def make_cityscapes_shapes(root: str,
                           splits: Optional[Dict[str, int]] = None,
                           image_size: Tuple[int, int] = (64, 128),
                           max_objects: int = 5,
                           object_size: Tuple[int, int] = (8, 40),
                           ignore_fraction: float = 0.05,
                           city: str = 'synthcity',
                           seed: int = 0,
                           texture: float = 0.0,
                           distractors: int = 0,
                           color_noise: Optional[float] = None,
                           class_weights: Optional[Sequence[float]] = None) -> None:
    """Write a Cityscapes-format shapes dataset.

    Train id ``0`` is the background and ``1 + k`` the k-th entry of
    :data:`SHAPE_CLASSES`; a random band of about ``ignore_fraction`` of each label map is
    255 (ignore). mmseg's ``CityscapesDataset`` reads them with its own 19 classes, so ids
    0-6 carry Cityscapes' names (road, sidewalk, building, wall, fence, pole, traffic
    light) there and the other 12 classes never occur (``IoUMetric`` reports them as NaN
    and leaves them out of mIoU). :func:`cityscapes_shapes_classes` gives the real names.

    Args:
        root: output folder (the Cityscapes ``data_root``).
        splits: split name -> number of images (default ``{'train': 8, 'val': 4}``).
        image_size: (height, width).
        max_objects: at most this many shapes per image.
        object_size: (min, max) shape side in pixels.
        ignore_fraction: fraction of rows labelled 255 in each map.
        city: the city folder name.
        seed: random seed.
        texture: amplitude of the stripes on shapes and background; 0: none.
        distractors: at most this many unannotated strokes per image (background pixels).
        color_noise: see :func:`make_coco_shapes`.
        class_weights: relative frequency of the six shape classes (train ids 1-6); see
            :func:`make_coco_shapes`. None (default): uniform, output unchanged.
    """
    class_probs = class_probabilities(class_weights)
    splits = splits or {'train': 8, 'val': 4}
    height, width = image_size
    for split_idx, (split, num_images) in enumerate(sorted(splits.items())):
        rng = np.random.default_rng([seed, 100 + split_idx])
        img_dir = osp.join(root, 'leftImg8bit', split, city)
        ann_dir = osp.join(root, 'gtFine', split, city)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        for idx in range(num_images):
            img, labels, _ = _render(rng, height, width, max_objects, *object_size,
                                     texture=texture, distractors=distractors,
                                     color_noise=color_noise, class_probs=class_probs)
            train_ids = np.where(labels == 255, 0, labels + 1).astype(np.uint8)
            band = int(round(height * ignore_fraction))
            if band:
                start = int(rng.integers(0, height - band + 1))
                train_ids[start:start + band] = 255
            stem = f'{city}_{idx:06d}_000019'
            cv2.imwrite(osp.join(img_dir, f'{stem}_leftImg8bit.png'), img)
            cv2.imwrite(osp.join(ann_dir, f'{stem}_gtFine_labelTrainIds.png'), train_ids)
            # As Cityscapes ships them, for the official evaluation: label ids, and
            # instance ids, which equal them for classes without instances (ids 0-6).
            for kind in ('labelIds', 'instanceIds'):
                cv2.imwrite(osp.join(ann_dir, f'{stem}_gtFine_{kind}.png'),
                            CITYSCAPES_LABEL_IDS[train_ids])


def cityscapes_shapes_classes() -> Sequence[str]:
    """What train ids 0, 1, ... of :func:`make_cityscapes_shapes` depict."""
    return ('background', ) + SHAPE_CLASSES
