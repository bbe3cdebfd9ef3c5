# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""The synthetic datasets' ``class_weights``: validation, drawn frequencies, and the
unchanged default output."""
import hashlib
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest

from mmdist.datasets import SHAPE_CLASSES, make_cityscapes_shapes, make_coco_shapes

# Digests of the decoded files written by the generator before `class_weights` existed
# (git 4ac7314), for the arguments of `_old_outputs`: the default must not change them.
CITYSCAPES_DIGEST = 'f4a23a9727832da8b7bb284a3d39464aa1cddb13e30dd2758d4fa1a7650b08a9'
COCO_DIGEST = '6b65000edd6053c7c775bdcd86d521e9daadd5065957eaf323053b40f1671b0d'
KNOBS = dict(texture=25.0, distractors=4, color_noise=60.0)


def _digest(root):
    """sha256 over relative paths, decoded pixels and parsed JSON of every file the
    generator wrote at 4ac7314 (the label-id maps for the official Cityscapes evaluation
    came later and are derived from the train-id maps; test_cityscapes_metric.py checks
    them)."""
    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(('_gtFine_labelIds.png', '_gtFine_instanceIds.png')):
                continue
            path = osp.join(folder, name)
            digest.update(osp.relpath(path, root).encode())
            if name.endswith('.json'):
                with open(path, encoding='utf-8') as f:
                    digest.update(json.dumps(json.load(f), sort_keys=True).encode())
            else:
                pixels = cv2.imread(path, cv2.IMREAD_UNCHANGED)
                digest.update(str(pixels.shape).encode())
                digest.update(pixels.tobytes())
    return digest.hexdigest()


@pytest.mark.parametrize('class_weights', ['omitted', None])
def test_default_output_is_unchanged(tmp_path, class_weights):
    extra = {} if class_weights == 'omitted' else dict(class_weights=None)
    city, coco = str(tmp_path / 'city'), str(tmp_path / 'coco')
    make_cityscapes_shapes(city, {'train': 3, 'val': 2}, max_objects=6, object_size=(6, 40),
                           **KNOBS, **extra)
    make_coco_shapes(coco, {'train': 3, 'val': 2}, image_size=(64, 64), **KNOBS, **extra)
    assert _digest(city) == CITYSCAPES_DIGEST
    assert _digest(coco) == COCO_DIGEST


def _instance_counts(root):
    with open(osp.join(root, 'annotations', 'instances_train.json'), encoding='utf-8') as f:
        annotations = json.load(f)['annotations']
    return np.bincount([a['category_id'] - 1 for a in annotations], minlength=6)


def test_coco_instance_frequencies_follow_the_weights(tmp_path):
    weights = np.array([8.0, 4.0, 2.0, 1.0, 1.0, 0.0])
    make_coco_shapes(str(tmp_path), {'train': 500}, image_size=(64, 64), max_objects=3,
                     object_size=(8, 24), class_weights=weights)
    counts = _instance_counts(str(tmp_path))
    expected = counts.sum() * weights / weights.sum()
    assert counts.sum() > 800  # about 2 objects per image
    assert counts[5] == 0  # weight 0: never drawn
    # Each count within 5 binomial standard deviations of its expectation (the smallest
    # expectation, 1/16 of ~1000, is ~60 +- 8; uniform drawing would give ~170).
    std = np.sqrt(counts.sum() * (weights / weights.sum()) * (1 - weights / weights.sum()))
    assert np.all(np.abs(counts - expected) <= 5 * std + 1e-9), (counts, expected)
    # The most common class is 8x as frequent as the rarest drawn ones.
    ratio = counts[0] / counts[3:5].mean()
    assert 5.5 < ratio < 11.5, counts


def _pixel_counts(root):
    counts = np.zeros(256, np.int64)
    folder = osp.join(root, 'gtFine', 'train', 'synthcity')
    for name in os.listdir(folder):
        counts += np.bincount(cv2.imread(osp.join(folder, name), cv2.IMREAD_UNCHANGED).ravel(),
                              minlength=256)
    return counts[1:1 + len(SHAPE_CLASSES)]  # train ids 1-6


def test_cityscapes_pixel_frequencies_follow_the_weights(tmp_path):
    # Rings and diamonds 10x rarer. Shapes differ in area (a ring has a hole), so the
    # reference for a class's area is the same generator without weights: per class,
    # pixels(weighted) / pixels(uniform) is proportional to its drawing probability.
    args = dict(splits={'train': 400}, image_size=(64, 128), max_objects=6,
                object_size=(6, 40))
    make_cityscapes_shapes(str(tmp_path / 'uniform'), **args)
    make_cityscapes_shapes(str(tmp_path / 'weighted'), class_weights=(10, 10, 10, 10, 1, 1),
                           **args)
    uniform, weighted = _pixel_counts(str(tmp_path / 'uniform')), _pixel_counts(
        str(tmp_path / 'weighted'))
    assert uniform.min() > 0
    common = weighted[:4].sum() / uniform[:4].sum()
    rare = weighted[4:].sum() / uniform[4:].sum()
    # Expected rare / common: (1/42) / (10/42) = 0.1; uniform drawing would give ~1.
    assert 0.06 < rare / common < 0.16, (weighted, uniform)
    # Among the common classes the weights are equal: no class is off by more than 30%.
    per_class = weighted[:4] / uniform[:4]
    assert per_class.max() / per_class.min() < 1.3, per_class


@pytest.mark.parametrize('weights, message', [
    ((1, 1, 1), 'one weight per shape class'),
    ((1, 1, 1, 1, 1, -1), 'non-negative'),
    ((0, 0, 0, 0, 0, 0), 'not all be zero'),
    ((1, 1, 1, 1, 1, float('nan')), 'finite'),
    (('a', 1, 1, 1, 1, 1), '6 numbers'),
])
@pytest.mark.parametrize('make', [make_cityscapes_shapes, make_coco_shapes])
def test_bad_class_weights_are_refused(tmp_path, make, weights, message):
    with pytest.raises(ValueError, match='class_weights') as err:
        make(str(tmp_path), {'train': 1}, class_weights=weights)
    assert message in str(err.value)
    assert not os.listdir(tmp_path)  # refused before anything was written
