# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Tiny detection configs for CPU tests: the shipped configs shrunk, never copied.

Each helper writes config files into a temporary folder; test configs ``_base_`` the
shipped distillation config and override only sizes, data paths and the schedule.
"""
import copy
import os.path as osp
from typing import Dict, Optional

import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope, init_default_scope

from mmdist.datasets import SHAPE_CLASSES
from mmdist.registry import MODELS
from mmdist.testing import (TINY_GN, save_teacher_checkpoint, shipped_config_dir, tiny_detr,
                            tiny_retinanet, tiny_rtmdet, tiny_swin, tiny_two_stage,
                            write_config)

DET_CONFIGS = shipped_config_dir('dist_det')
IMG_SIZE = 64


def data_overrides(coco_root: str, batch_size: int = 2, validate: bool = True) -> str:
    """Config text pointing the stock COCO dataloaders at the synthetic dataset;
    ``validate=False`` for configs without validation (the demo's): test only."""
    held_out = 'val' if validate else 'test'
    text = f'''
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
{held_out}_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=dict(classes=classes),
                 ann_file='annotations/instances_val.json',
                 data_prefix=dict(img='images/val/'), pipeline=test_pipeline))
{held_out}_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
train_cfg = dict(max_epochs=1, val_interval=1)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1))
randomness = dict(seed=0)
'''
    if validate:
        text += 'test_dataloader = val_dataloader\ntest_evaluator = val_evaluator\n'
    return text


#: Shipped dense configs shrunk for tests: name -> (shipped config, tiny student overrides,
#: the teacher's stock config, tiny teacher overrides).
DENSE_PAIRS = {
    'retinanet': ('dist_retinanet-x101-64x4d_retinanet-r50_fpn_2x_coco.py',
                  tiny_retinanet(8, 16), 'mmdet::retinanet/retinanet_r50_fpn_2x_coco.py',
                  tiny_retinanet(16, 32)),
    'rtmdet': ('dist_rtmdet-l_rtmdet-s_8xb32-300e_coco.py', tiny_rtmdet(0.0625, 16),
               'mmdet::rtmdet/rtmdet_l_8xb32-300e_coco.py', tiny_rtmdet(0.125, 32)),
    'crosshead_gfl_retinanet': (
        'dist-crosshead_gfl-r101_retinanet-r50_fpn_2x_coco.py', tiny_retinanet(8, 16),
        'mmdet::gfl/gfl_r101_fpn_ms-2x_coco.py', tiny_retinanet(16, 32, **TINY_GN)),
    'crosshead_rtmdet_atss': (
        'dist-crosshead_rtmdet-l_atss-r50_fpn_1x_coco.py', tiny_retinanet(8, 16, **TINY_GN),
        'mmdet::rtmdet/rtmdet_l_8xb32-300e_coco.py', tiny_rtmdet(0.125, 32)),
}


def write_dense_configs(tmp: str, coco_root: str, pair: str,
                        teacher_model: Optional[dict] = None,
                        teacher_init: bool = True) -> Dict[str, str]:
    """A tiny teacher config + checkpoint and a test config inheriting the shipped config
    of :data:`DENSE_PAIRS` ``pair``, both shrunk; ``teacher_model``: more teacher overrides
    (e.g. its data preprocessor); ``teacher_init``: see :func:`save_teacher_checkpoint`."""
    shipped, student, teacher_base, teacher = DENSE_PAIRS[pair]
    teacher = dict(teacher, **(teacher_model or {}))
    teacher_cfg = write_config(osp.join(tmp, f'teacher_{pair}.py'),
                               f'_base_ = [{teacher_base!r}]\nmodel = {teacher!r}\n')
    teacher_ckpt = save_teacher_checkpoint(teacher_cfg, osp.join(tmp, f'teacher_{pair}.pth'),
                                           init_weights=teacher_init)
    cfg = write_config(
        osp.join(tmp, f'dist_{pair}_tiny.py'),
        f'_base_ = [{osp.join(DET_CONFIGS, shipped)!r}]\n'
        f'model = dict(student={student!r}, teacher_cfg={teacher_cfg!r}, '
        f'teacher_ckpt={teacher_ckpt!r})\n' + data_overrides(coco_root))
    return dict(config=cfg, teacher_cfg=teacher_cfg, teacher_ckpt=teacher_ckpt)


def write_retinanet_configs(tmp: str, coco_root: str) -> Dict[str, str]:
    """Tiny teacher config + checkpoint and a test config inheriting the shipped RetinaNet
    config."""
    return write_dense_configs(tmp, coco_root, 'retinanet')


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


#: DETR-family pairs shrunk for tests: name -> (the student's stock config, tiny student
#: overrides, the teacher's stock config, tiny teacher overrides). Students and teachers
#: differ in backbone, queries, feature levels and decoder layers. The tests' distillation
#: configs inherit the shipped DINO config and replace its student (see
#: :func:`write_detr_configs`).
DETR_PAIRS = {
    'dino': ('mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py',
             tiny_detr(8, 30, levels=4, embed_dims=256, dn_cfg=dict(
                 group_cfg=dict(num_dn_queries=10))),
             'mmdet::dino/dino-5scale_swin-l_8xb2-12e_coco.py',
             tiny_detr(8, 40, levels=5, embed_dims=256, decoder_layers=3,
                       backbone=tiny_swin(16))),
    'deformable': ('mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py',
                   tiny_detr(8, 20, levels=2),
                   'mmdet::deformable_detr/deformable-detr-refine-twostage_r50_16xb2-50e_coco.py',
                   tiny_detr(16, 30, levels=3, embed_dims=256)),
    'dino_deformable': ('mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py',
                        tiny_detr(8, 30, levels=4, embed_dims=256, dn_cfg=dict(
                            group_cfg=dict(num_dn_queries=10))),
                        'mmdet::deformable_detr/deformable-detr-refine_r50_16xb2-50e_coco.py',
                        tiny_detr(16, 30, levels=3, embed_dims=64)),
    'detr': ('mmdet::detr/detr_r18_8xb2-500e_coco.py', tiny_detr(8, 30),
             'mmdet::detr/detr_r50_8xb2-150e_coco.py', tiny_detr(16, 20, embed_dims=64)),
}
DINO_CONFIG = 'dist_dino-5scale-swin-l_dino-4scale-r50_8xb2-12e_coco.py'


def write_detr_configs(tmp: str, coco_root: str, pair: str, teacher_init: bool = False,
                       teacher_model: Optional[dict] = None, **model) -> Dict[str, str]:
    """Tiny student and teacher configs of :data:`DETR_PAIRS` ``pair`` (plain mmdet
    configs), a teacher checkpoint, and a distillation config inheriting the shipped DINO
    config with that student (for ``'dino'``: the shipped student shrunk) and teacher
    (``model``: more distiller settings; ``teacher_model``: more teacher overrides, e.g.
    its data preprocessor). The teacher keeps PyTorch's initialisation unless
    ``teacher_init`` (see :func:`save_teacher_checkpoint`): mmdet's prior makes its class
    logits all alike."""
    student_base, student, teacher_base, teacher = DETR_PAIRS[pair]
    teacher = dict(teacher, **(teacher_model or {}))
    paths = {}
    for role, base, overrides in (('student', student_base, student),
                                  ('teacher', teacher_base, teacher)):
        cfg = Config.fromstring(f'_base_ = [{base!r}]\nmodel = {overrides!r}\n', '.py')
        paths[f'{role}_cfg'] = osp.join(tmp, f'{role}_{pair}.py')
        cfg.dump(paths[f'{role}_cfg'])
    teacher_ckpt = save_teacher_checkpoint(paths['teacher_cfg'],
                                           osp.join(tmp, f'teacher_{pair}.pth'),
                                           init_weights=teacher_init)
    if pair == 'dino':  # the shipped config's own student, shrunk
        student_model = student
    else:
        student_model = dict(_delete_=True,
                             **Config.fromfile(paths['student_cfg']).model.to_dict())
    config = write_config(
        osp.join(tmp, f'dist_{pair}_tiny.py'),
        f'_base_ = [{osp.join(DET_CONFIGS, DINO_CONFIG)!r}]\n'
        f'model = dict(student={student_model!r}, '
        f'teacher_cfg={paths["teacher_cfg"]!r}, teacher_ckpt={teacher_ckpt!r}, '
        f'**{model!r})\n' + data_overrides(coco_root))
    return dict(config=config, teacher_ckpt=teacher_ckpt, **paths)


def build_distiller(cfg_path: str, **model_overrides):
    """The model of a distillation config (with ``model_overrides``) in mmdet's scope,
    and the config."""
    cfg = Config.fromfile(cfg_path)
    cfg.model.update(model_overrides)
    with DefaultScope.overwrite_default_scope('mmdet'):
        return MODELS.build(cfg.model), cfg


def train_batch(model, cfg: Config, num_images: int = 2) -> dict:
    """The first ``num_images`` images of the config's training set through its pipeline
    and the model's data preprocessor (training mode)."""
    init_default_scope('mmdet')
    from mmdet.registry import DATASETS
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    return model.data_preprocessor(pseudo_collate([dataset[i] for i in range(num_images)]),
                                   True)


def step_changes_the_student_only(model, losses: dict) -> None:
    """One SGD step (lr 0.1) on the sum of the ``loss*`` entries of ``losses`` (a
    distiller's output, graph kept): afterwards the teacher's state is bit-identical, the
    student's floating-point state changed, and the teacher is not in the distiller's
    state dict."""
    teacher_before = copy.deepcopy(model.teacher.state_dict())
    student_before = copy.deepcopy(model.student.state_dict())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    optimizer.zero_grad()
    sum(v if torch.is_tensor(v) else sum(v) for k, v in losses.items()
        if 'loss' in k).backward()
    optimizer.step()
    for key, value in model.teacher.state_dict().items():
        assert torch.equal(value, teacher_before[key]), key
    assert any(not torch.equal(v, student_before[k])
               for k, v in model.student.state_dict().items() if v.is_floating_point())
    assert not any(k.startswith('teacher') for k in model.state_dict())
