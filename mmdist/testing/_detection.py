# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Tiny detection configs for CPU tests: the shipped configs shrunk, never copied.

Each helper writes config files into a temporary folder; test configs ``_base_`` the
shipped distillation config and override only sizes, data paths and the schedule.
"""
import os.path as osp
from typing import Dict

from mmengine.config import Config

from mmdist.datasets import SHAPE_CLASSES
from mmdist.testing import (save_teacher_checkpoint, shipped_config_dir, tiny_retinanet,
                            tiny_two_stage, write_config)

DET_CONFIGS = shipped_config_dir('dist_det')
IMG_SIZE = 64


def data_overrides(coco_root: str, batch_size: int = 2) -> str:
    """Config text pointing the stock COCO dataloaders at the synthetic dataset."""
    return f'''
classes = {SHAPE_CLASSES!r}
data_root = {coco_root + "/"!r}
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=({IMG_SIZE}, {IMG_SIZE}), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=({IMG_SIZE}, {IMG_SIZE}), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size={batch_size}, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=dict(classes=classes),
                 ann_file='annotations/instances_train.json',
                 data_prefix=dict(img='images/train/'), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=dict(classes=classes),
                 ann_file='annotations/instances_val.json',
                 data_prefix=dict(img='images/val/'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=1, val_interval=1)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1))
randomness = dict(seed=0)
'''


def write_retinanet_configs(tmp: str, coco_root: str) -> Dict[str, str]:
    """Tiny teacher config + checkpoint and a test config inheriting the shipped one."""
    teacher_cfg = write_config(
        osp.join(tmp, 'teacher_retinanet.py'),
        "_base_ = ['mmdet::retinanet/retinanet_r50_fpn_2x_coco.py']\n"
        f'model = {tiny_retinanet(16, 32)!r}\n')
    teacher_ckpt = save_teacher_checkpoint(teacher_cfg, osp.join(tmp, 'teacher_retinanet.pth'))
    cfg = write_config(
        osp.join(tmp, 'dist_retinanet_tiny.py'),
        f"_base_ = [{osp.join(DET_CONFIGS, 'dist_retinanet-x101-64x4d_retinanet-r50_fpn_2x_coco.py')!r}]\n"
        f'model = dict(student={tiny_retinanet(8, 16)!r}, teacher_cfg={teacher_cfg!r}, '
        f'teacher_ckpt={teacher_ckpt!r})\n' + data_overrides(coco_root))
    return dict(config=cfg, teacher_cfg=teacher_cfg, teacher_ckpt=teacher_ckpt)


def write_faster_rcnn_configs(tmp: str, coco_root: str) -> Dict[str, str]:
    """Tiny Cascade Mask R-CNN teacher, and the shipped Faster R-CNN config shrunk."""
    teacher = Config.fromstring(
        "_base_ = ['mmdet::cascade_rcnn/cascade-mask-rcnn_x101-64x4d_fpn_20e_coco.py']\n",
        '.py')
    tiny_two_stage(teacher, 16, 32)
    teacher_cfg = osp.join(tmp, 'teacher_cascade.py')
    teacher.dump(teacher_cfg)
    teacher_ckpt = save_teacher_checkpoint(teacher_cfg, osp.join(tmp, 'teacher_cascade.pth'))
    student = Config.fromstring(
        "_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_2x_coco.py']\n", '.py')
    tiny_two_stage(student, 8, 16)
    cfg = write_config(
        osp.join(tmp, 'dist_faster_tiny.py'),
        "_base_ = [" + repr(osp.join(
            DET_CONFIGS, 'dist_cascade-mask-rcnn-x101-64x4d_faster-rcnn-r50_fpn_2x_coco.py')) +
        "]\n"
        f'model = dict(student=dict(_delete_=True, **{student.model.to_dict()!r}), '
        f'teacher_cfg={teacher_cfg!r}, teacher_ckpt={teacher_ckpt!r})\n' +
        data_overrides(coco_root))
    return dict(config=cfg, teacher_cfg=teacher_cfg, teacher_ckpt=teacher_ckpt)
