# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Small deterministic synthetic datasets in the official on-disk formats.

* :func:`make_coco_shapes`: COCO detection (``images/*.jpg`` + ``annotations/*.json``).
* :func:`make_cityscapes_shapes`: Cityscapes segmentation
  (``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` and
  ``gtFine/<split>/<city>/*_gtFine_labelTrainIds.png``, 255 = ignore).

Images show filled shapes (one class per shape kind) of several sizes and colours on a
textured background, with occlusion, so that a bigger model has something to beat a
small one on. They are read by mmdet's ``CocoDataset`` and mmseg's
``CityscapesDataset`` exactly as real data.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

#: Class names, in label order, of both synthetic datasets.
SHAPE_CLASSES = ('rectangle', 'ellipse', 'triangle', 'cross')


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Smooth colour gradient plus pixel noise, uint8 BGR (H, W, 3)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(60, 190, size=3)
    slope = rng.uniform(-0.6, 0.6, size=(2, 3))
    img = base + yy[..., None] * slope[0] * 64 / height + xx[..., None] * slope[1] * 64 / width
    img += rng.normal(0, 12, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _draw(img: np.ndarray, mask: np.ndarray, label: int, box: Tuple[int, int, int, int],
          color: Tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Draw shape ``label`` into ``img``, write ``label`` into ``mask``; return where drawn."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    shape = np.zeros(mask.shape, np.uint8)
    if label == 0:
        cv2.rectangle(shape, (x0, y0), (x1 - 1, y1 - 1), 1, thickness=-1)
    elif label == 1:
        cv2.ellipse(shape, (cx, cy), (max((x1 - x0) // 2, 1), max((y1 - y0) // 2, 1)), 0, 0,
                    360, 1, thickness=-1)
    elif label == 2:
        pts = np.array([[cx, y0], [x0, y1 - 1], [x1 - 1, y1 - 1]], np.int32)
        cv2.fillPoly(shape, [pts], 1)
    else:
        bar_w, bar_h = max((x1 - x0) // 3, 1), max((y1 - y0) // 3, 1)
        cv2.rectangle(shape, (x0, cy - bar_h // 2), (x1 - 1, cy + bar_h // 2), 1, -1)
        cv2.rectangle(shape, (cx - bar_w // 2, y0), (cx + bar_w // 2, y1 - 1), 1, -1)
    drawn = shape.astype(bool)
    texture = rng.normal(0, 10, size=img.shape)
    img[drawn] = np.clip(np.asarray(color, np.float32) + texture[drawn], 0, 255).astype(np.uint8)
    mask[drawn] = label
    return drawn


def _render(rng: np.random.Generator, height: int, width: int, max_objects: int,
            min_size: int, max_size: int):
    """One image: (BGR image, per-pixel label map with 255 = background, objects)."""
    img = _background(rng, height, width)
    labels = np.full((height, width), 255, np.uint8)
    instance = np.full((height, width), -1, np.int32)
    objects: List[Dict] = []
    for idx in range(int(rng.integers(1, max_objects + 1))):
        label = int(rng.integers(len(SHAPE_CLASSES)))
        w = int(rng.integers(min_size, max_size + 1))
        h = int(np.clip(w * rng.uniform(0.6, 1.6), min_size, max_size))
        x0 = int(rng.integers(0, max(width - w, 1)))
        y0 = int(rng.integers(0, max(height - h, 1)))
        color = tuple(int(c) for c in rng.integers(0, 256, size=3))
        drawn = _draw(img, labels, label, (x0, y0, x0 + w, y0 + h), color, rng)
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
                     splits: Dict[str, int] = None,
                     image_size: Tuple[int, int] = (128, 128),
                     max_objects: int = 4,
                     object_size: Tuple[int, int] = (12, 56),
                     seed: int = 0) -> Dict[str, str]:
    """Write a COCO-format shapes dataset.

    Args:
        root: output folder; gets ``images/<split>/*.jpg`` and
            ``annotations/instances_<split>.json``.
        splits: split name -> number of images (default ``{'train': 8, 'val': 4}``).
        image_size: (height, width) in pixels.
        max_objects: at most this many objects per image (at least one).
        object_size: (min, max) object side in pixels.
        seed: random seed; the same arguments give the same files.

    Returns:
        split name -> annotation file path.
    """
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
            img, _, objects = _render(rng, height, width, max_objects, *object_size)
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


def make_cityscapes_shapes(root: str,
                           splits: Dict[str, int] = None,
                           image_size: Tuple[int, int] = (64, 128),
                           max_objects: int = 5,
                           object_size: Tuple[int, int] = (8, 40),
                           ignore_fraction: float = 0.05,
                           city: str = 'synthcity',
                           seed: int = 0) -> None:
    """Write a Cityscapes-format shapes dataset.

    Train id ``0`` is the background and ``1 + k`` the k-th entry of
    :data:`SHAPE_CLASSES`; a random band of about ``ignore_fraction`` of each label map is
    255 (ignore). mmseg's ``CityscapesDataset`` reads them with its own 19 classes, so ids
    0-4 carry Cityscapes' names (road, sidewalk, building, wall, fence) there and the other
    14 classes never occur (``IoUMetric`` reports them as NaN and leaves them out of mIoU).

    Args:
        root: output folder (the Cityscapes ``data_root``).
        splits: split name -> number of images (default ``{'train': 8, 'val': 4}``).
        image_size: (height, width).
        max_objects: at most this many shapes per image.
        object_size: (min, max) shape side in pixels.
        ignore_fraction: fraction of rows labelled 255 in each map.
        city: the city folder name.
        seed: random seed.
    """
    splits = splits or {'train': 8, 'val': 4}
    height, width = image_size
    for split_idx, (split, num_images) in enumerate(sorted(splits.items())):
        rng = np.random.default_rng([seed, 100 + split_idx])
        img_dir = osp.join(root, 'leftImg8bit', split, city)
        ann_dir = osp.join(root, 'gtFine', split, city)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        for idx in range(num_images):
            img, labels, _ = _render(rng, height, width, max_objects, *object_size)
            train_ids = np.where(labels == 255, 0, labels + 1).astype(np.uint8)
            band = int(round(height * ignore_fraction))
            if band:
                start = int(rng.integers(0, height - band + 1))
                train_ids[start:start + band] = 255
            stem = f'{city}_{idx:06d}_000019'
            cv2.imwrite(osp.join(img_dir, f'{stem}_leftImg8bit.png'), img)
            cv2.imwrite(osp.join(ann_dir, f'{stem}_gtFine_labelTrainIds.png'), train_ids)


def cityscapes_shapes_classes() -> Sequence[str]:
    """What train ids 0, 1, ... of :func:`make_cityscapes_shapes` depict."""
    return ('background', ) + SHAPE_CLASSES
