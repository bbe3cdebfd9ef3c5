# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Tiny segmentation configs for CPU tests: the shipped configs shrunk, never copied."""
import os.path as osp
from typing import Dict

from mmengine.config import Config

from mmdist.testing import (save_teacher_checkpoint, shipped_config_dir, shrink_mask2former,
                            shrink_segformer, shrink_segmentor, write_config)

SEG_CONFIGS = shipped_config_dir('dist_seg')


def data_overrides(root: str) -> str:
    return f'''
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root={root!r}, pipeline=train_pipeline,
                 data_prefix=dict(img_path='leftImg8bit/train', seg_map_path='gtFine/train')))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(data_root={root!r}, pipeline=test_pipeline,
                 data_prefix=dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val')))
test_dataloader = val_dataloader
train_cfg = dict(max_iters=4, val_interval=4)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=4))
randomness = dict(seed=0)
'''


def shrink_seg_model(cfg: Config, width: int) -> None:
    """Shrink a DeepLabV3 / PSPNet (ResNetV1c-d8), SegFormer or Mask2Former config in place
    (``width``: the ResNet base width, MiT ``embed_dims`` or Swin ``embed_dims``)."""
    if cfg.model.decode_head.type == 'Mask2FormerHead':
        shrink_mask2former(cfg, width)
    elif cfg.model.backbone.type == 'MixVisionTransformer':
        shrink_segformer(cfg, width)
    else:
        shrink_segmentor(cfg, width)


def write_tiny_shipped_config(tmp: str, root: str, shipped_name: str,
                              teacher_name: str = 'teacher') -> Dict[str, str]:
    """A shipped ``configs/dist_seg`` config with its student and its stock teacher config
    shrunk (:func:`shrink_seg_model`), a teacher checkpoint (``<teacher_name>.pth``) and
    the tiny data of ``root``."""
    shipped = osp.join(SEG_CONFIGS, shipped_name)
    teacher_base = Config.fromfile(shipped).model.teacher_cfg
    teacher = Config.fromstring(f'_base_ = [{teacher_base!r}]\n', '.py')
    shrink_seg_model(teacher, 16)
    teacher_cfg = osp.join(tmp, f'{teacher_name}.py')
    teacher.dump(teacher_cfg)
    teacher_ckpt = save_teacher_checkpoint(teacher_cfg, osp.join(tmp, f'{teacher_name}.pth'),
                                           scope='mmseg')
    student_cfg = Config.fromfile(shipped)
    student_cfg.model = student_cfg.model.student
    shrink_seg_model(student_cfg, 8)
    cfg = write_config(
        osp.join(tmp, f'tiny_{shipped_name}'),
        f'_base_ = [{shipped!r}]\n'
        f'model = dict(student=dict(_delete_=True, **{student_cfg.model.to_dict()!r}), '
        f'teacher_cfg={teacher_cfg!r}, teacher_ckpt={teacher_ckpt!r})\n' +
        data_overrides(root))
    return dict(config=cfg, teacher_cfg=teacher_cfg, teacher_ckpt=teacher_ckpt)


def write_segmentation_configs(tmp: str, root: str, student: str = 'deeplabv3',
                               protocol: str = '8xb2-40k') -> Dict[str, str]:
    """Tiny DeepLabV3 teacher (+checkpoint) and the shipped config for ``student`` shrunk."""
    return write_tiny_shipped_config(
        tmp, root, f'dist_deeplabv3-r101-d8_{student}-r18-d8_{protocol}_cityscapes-512x1024.py',
        'teacher_deeplabv3')
