# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Tiny ImageNet-format data and classification configs for CPU tests.

The dataset is laid out as mmpretrain's ``ImageNet`` class reads the real one: class
sub-folders (synset-like names) under ``train/``, a flat ``val/`` folder with
``meta/val.txt`` (``<file> <label>`` per line). Test configs ``_base_`` the shipped
distillation config and override only sizes, normalisation, data paths and the schedule.
"""
import os
import os.path as osp
from typing import Dict

import cv2
import numpy as np
from mmengine.config import Config, ConfigDict

from mmdist.testing import save_teacher_checkpoint, shipped_config_dir, write_config

CLS_CONFIGS = shipped_config_dir('dist_cls')
IMG_SIZE = 32
#: Class names in label order; label k is stored in folder SYNSETS[k] (sorted order).
CLASSES = ('square', 'disk', 'triangle', 'cross')
SYNSETS = tuple(f'n{k:08d}' for k in range(len(CLASSES)))
#: The test teachers normalise differently from the students (mmpretrain's ImageNet
#: mean/std), so the teacher input adapter is exercised.
TEACHER_MEAN = [127.0, 110.0, 100.0]
TEACHER_STD = [40.0, 70.0, 55.0]


def _shape_image(rng: np.random.Generator, label: int) -> np.ndarray:
    """A (IMG_SIZE, IMG_SIZE, 3) uint8 BGR image: one filled shape of class ``label`` of
    random size, place and colour on a noisy background of another random colour."""
    img = rng.normal(rng.uniform(40, 215, size=3), 12, size=(IMG_SIZE, IMG_SIZE, 3))
    img = np.clip(img, 0, 255).astype(np.uint8)
    side = int(rng.integers(12, 27))
    x0, y0 = (int(v) for v in rng.integers(0, IMG_SIZE - side + 1, size=2))
    x1, y1, cx, cy = x0 + side - 1, y0 + side - 1, x0 + side // 2, y0 + side // 2
    color = tuple(int(c) for c in rng.integers(0, 256, size=3))
    if CLASSES[label] == 'square':
        cv2.rectangle(img, (x0, y0), (x1, y1), color, thickness=-1)
    elif CLASSES[label] == 'disk':
        cv2.circle(img, (cx, cy), side // 2, color, thickness=-1)
    elif CLASSES[label] == 'triangle':
        cv2.fillPoly(img, [np.array([[cx, y0], [x0, y1], [x1, y1]], np.int32)], color)
    else:
        bar = max(side // 6, 1)
        cv2.rectangle(img, (x0, cy - bar), (x1, cy + bar), color, thickness=-1)
        cv2.rectangle(img, (cx - bar, y0), (cx + bar, y1), color, thickness=-1)
    return img


def make_imagenet_shapes(root: str, train_per_class: int = 4, num_val: int = 8,
                         seed: int = 0) -> None:
    """Write the ImageNet-format shapes dataset (PNG, lossless) under ``root``."""
    rng = np.random.default_rng(seed)
    for label, synset in enumerate(SYNSETS):
        os.makedirs(osp.join(root, 'train', synset), exist_ok=True)
        for i in range(train_per_class):
            cv2.imwrite(osp.join(root, 'train', synset, f'{synset}_{i:04d}.png'),
                        _shape_image(rng, label))
    os.makedirs(osp.join(root, 'val'), exist_ok=True)
    os.makedirs(osp.join(root, 'meta'), exist_ok=True)
    lines = []
    for i in range(num_val):
        label = i % len(SYNSETS)
        name = f'val_{i:05d}.png'
        cv2.imwrite(osp.join(root, 'val', name), _shape_image(rng, label))
        lines.append(f'{name} {label}\n')
    with open(osp.join(root, 'meta', 'val.txt'), 'w', encoding='utf-8') as f:
        f.writelines(lines)


def shrink_classifier(model: ConfigDict, width: int) -> None:
    """Shrink an mmpretrain ResNet / MobileNetV2 / Swin ImageClassifier config in place."""
    backbone = model.backbone
    if backbone.type == 'ResNet':
        expansion = 1 if backbone.depth in (18, 34) else 4
        backbone.update(base_channels=width, stem_channels=width, init_cfg=None)
        in_channels = width * 8 * expansion
    elif backbone.type == 'MobileNetV2':
        backbone.update(widen_factor=0.25)
        in_channels = 1280  # MobileNetV2 keeps its last conv at 1280 for widen_factor <= 1
    elif backbone.type == 'SwinTransformer':
        backbone.update(arch=dict(embed_dims=width, depths=[1, 1], num_heads=[1, 2]),
                        img_size=IMG_SIZE, window_size=4, out_indices=(1, ), drop_path_rate=0.)
        in_channels = width * 2
    else:
        raise ValueError(f'no test shrinking for {backbone.type}')
    model.head.update(num_classes=len(CLASSES), in_channels=in_channels)


def data_overrides(root: str) -> str:
    """Config text pointing the stock ImageNet dataloaders at the synthetic dataset."""
    return f'''
classes = {CLASSES!r}
data_preprocessor = dict(num_classes={len(CLASSES)})
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(data_root={root!r}, split='train', metainfo=dict(classes=classes),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(data_root={root!r}, split='val', metainfo=dict(classes=classes),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator
train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1))
randomness = dict(seed=0)
'''


def write_classification_configs(tmp: str, root: str,
                                 shipped: str = 'dist_resnet34_resnet18_8xb32_in1k',
                                 student_width: int = 8,
                                 teacher_width: int = 16,
                                 extra: str = '') -> Dict[str, str]:
    """Tiny teacher (+checkpoint) of the shipped config's teacher_cfg, and the shipped
    config with its student shrunk and pointed at the synthetic data (plus ``extra``
    config text)."""
    shipped_path = osp.join(CLS_CONFIGS, f'{shipped}.py')
    shipped_cfg = Config.fromfile(shipped_path)
    teacher = Config.fromstring(f'_base_ = [{shipped_cfg.model.teacher_cfg!r}]\n', '.py')
    shrink_classifier(teacher.model, teacher_width)
    teacher.data_preprocessor.update(num_classes=len(CLASSES), mean=TEACHER_MEAN,
                                     std=TEACHER_STD)
    teacher_cfg = osp.join(tmp, f'teacher_{shipped}.py')
    teacher.dump(teacher_cfg)
    teacher_ckpt = save_teacher_checkpoint(teacher_cfg, osp.join(tmp, f'teacher_{shipped}.pth'),
                                           scope='mmpretrain')
    student = shipped_cfg.model.student
    shrink_classifier(student, student_width)
    cfg = write_config(
        osp.join(tmp, f'{shipped}_tiny.py'),
        f'_base_ = [{shipped_path!r}]\n'
        f'model = dict(student=dict(_delete_=True, **{student.to_dict()!r}), '
        f'teacher_cfg={teacher_cfg!r}, teacher_ckpt={teacher_ckpt!r})\n' + data_overrides(root) +
        extra)
    return dict(config=cfg, teacher_cfg=teacher_cfg, teacher_ckpt=teacher_ckpt)
