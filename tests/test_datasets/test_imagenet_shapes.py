# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""make_imagenet_shapes: the ImageNet on-disk layout as mmpretrain's ImageNet dataset reads
it, the labelled shape drawn where its class's mask is, determinism, argument checks."""
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from mmpretrain.datasets import ImageNet

from mmdist.datasets import SHAPE_CLASSES, imagenet_shapes_synsets, make_imagenet_shapes
from mmdist.datasets.imagenet_shapes import _random_box, render_shape_image
from mmdist.datasets.synthetic import _background, _shape_mask

KNOBS = dict(texture=25.0, distractors=3, color_noise=80.0, clutter=2)


def _files(root):
    return sorted(osp.relpath(osp.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def test_layout_is_read_by_mmpretrain_imagenet(tmp_path):
    root = str(tmp_path)
    sizes = make_imagenet_shapes(root, train_per_class=3, val_per_class=2, **KNOBS)
    synsets = imagenet_shapes_synsets()
    assert sizes == dict(train=18, val=12)
    assert list(synsets) == sorted(synsets) and len(synsets) == len(SHAPE_CLASSES)
    assert sorted(os.listdir(osp.join(root, 'train'))) == list(synsets)
    for split, count in sizes.items():
        dataset = ImageNet(data_root=root, split=split, metainfo=dict(classes=SHAPE_CLASSES),
                           pipeline=[])
        assert len(dataset) == count
        labels = [dataset.get_data_info(i)['gt_label'] for i in range(len(dataset))]
        assert np.bincount(labels).tolist() == [count // 6] * 6
        for i in range(len(dataset)):
            info = dataset.get_data_info(i)
            img = cv2.imread(info['img_path'])
            assert img.shape == (32, 32, 3) and img.dtype == np.uint8
            if split == 'train':  # the folder is the synset of the label
                assert osp.basename(osp.dirname(info['img_path'])) == synsets[info['gt_label']]
    with open(osp.join(root, 'meta', 'val.txt'), encoding='utf-8') as f:
        val = [line.split() for line in f]
    assert [int(label) for _, label in val] == [i % 6 for i in range(12)]


def test_same_arguments_same_files_other_seed_other_images(tmp_path):
    first, second, other = (str(tmp_path / name) for name in ('a', 'b', 'c'))
    for root, seed in ((first, 3), (second, 3), (other, 4)):
        make_imagenet_shapes(root, train_per_class=2, val_per_class=1, seed=seed, **KNOBS)
    assert _files(first) == _files(second) == _files(other)
    for rel in _files(first):
        with open(osp.join(first, rel), 'rb') as f, open(osp.join(second, rel), 'rb') as g:
            assert f.read() == g.read(), rel
    images = [rel for rel in _files(first) if rel.endswith('.png')]
    assert any(not np.array_equal(cv2.imread(osp.join(first, rel)),
                                  cv2.imread(osp.join(other, rel))) for rel in images)


@pytest.mark.parametrize('label', range(len(SHAPE_CLASSES)))
def test_the_labelled_shape_is_drawn_on_its_class_mask(label):
    """Without clutter and distractors, the image differs from its background exactly
    on the mask of class ``label`` in the drawn box (replayed with the same generator)."""
    size, object_size = (48, 48), (20, 40)
    img = render_shape_image(np.random.default_rng(label), label, size, object_size)
    replay = np.random.default_rng(label)
    background = _background(replay, *size)
    mask = _shape_mask(label, _random_box(replay, *size, *object_size), size)
    changed = (img != background).any(axis=2)
    assert mask.sum() >= 50
    assert not changed[~mask].any()
    assert changed[mask].mean() > 0.9  # the fill colour plus noise can equal the background


@pytest.mark.parametrize('kwargs, key', [
    (dict(object_size=(8, 40)), 'object_size'),
    (dict(object_size=(12, 10)), 'object_size'),
    (dict(train_per_class=-1), 'train_per_class'),
    (dict(clutter=1.5), 'clutter'),
])
def test_bad_arguments_are_refused(tmp_path, kwargs, key):
    with pytest.raises(ValueError, match=key):
        make_imagenet_shapes(str(tmp_path), **kwargs)
