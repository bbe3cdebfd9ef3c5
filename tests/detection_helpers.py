# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Tiny detection configs for CPU tests: the shipped configs shrunk, never copied.

Each helper writes config files into a temporary folder; test configs ``_base_`` the
shipped distillation config and override only sizes, data paths and the schedule.
"""
import os.path as osp
from typing import Dict

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmdist.datasets import SHAPE_CLASSES
from mmdist.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DET_CONFIGS = osp.join(REPO, 'configs', 'dist_det')
IMG_SIZE = 64


def tiny_resnet(base_channels: int) -> dict:
    """A ResNet-18 with ``base_channels`` stem width and no pretrained init."""
    return dict(_delete_=True, type='ResNet', depth=18, base_channels=base_channels,
                num_stages=4, out_indices=(0, 1, 2, 3), frozen_stages=-1,
                norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False,
                style='pytorch', init_cfg=None)


def tiny_fpn(base_channels: int, out_channels: int) -> dict:
    return dict(in_channels=[base_channels * 2**i for i in range(4)],
                out_channels=out_channels)


def tiny_retinanet(base_channels: int, width: int) -> dict:
    return dict(backbone=tiny_resnet(base_channels), neck=tiny_fpn(base_channels, width),
                bbox_head=dict(num_classes=len(SHAPE_CLASSES), in_channels=width,
                               feat_channels=width, stacked_convs=1))


def tiny_two_stage(cfg: Config, base_channels: int, width: int) -> None:
    """Shrink a Faster / Cascade (Mask) R-CNN model config in place."""
    model = cfg.model
    model.backbone = {k: v for k, v in tiny_resnet(base_channels).items() if k != '_delete_'}
    model.neck.update(tiny_fpn(base_channels, width))
    model.rpn_head.update(in_channels=width, feat_channels=width)
    roi = model.roi_head
    roi.bbox_roi_extractor.out_channels = width
    heads = roi.bbox_head if isinstance(roi.bbox_head, list) else [roi.bbox_head]
    for head in heads:
        head.update(in_channels=width, fc_out_channels=32, num_classes=len(SHAPE_CLASSES))
    if 'mask_head' in roi:
        roi.mask_roi_extractor.out_channels = width
        roi.mask_head.update(in_channels=width, conv_out_channels=width,
                             num_classes=len(SHAPE_CLASSES))
    # Few proposals and samples keep the CPU step short.
    model.train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=64)
    samplers = model.train_cfg.rcnn if isinstance(model.train_cfg.rcnn, list) else [
        model.train_cfg.rcnn]
    for rcnn in samplers:
        rcnn.sampler.num = 32
    model.test_cfg.rpn.update(nms_pre=200, max_per_img=64)


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


def write_config(path: str, text: str) -> str:
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
    return path


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


def save_teacher_checkpoint(teacher_cfg: str, path: str, seed: int = 123,
                            scope: str = 'mmdet') -> str:
    """Build the teacher config's model with a fixed seed and save a plain checkpoint."""
    cfg = Config.fromfile(teacher_cfg)
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(cfg.model)
    model.init_weights()
    torch.save(dict(meta=dict(note='tiny test teacher'), state_dict=model.state_dict()), path)
    return path
