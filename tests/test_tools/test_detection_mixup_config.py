# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""The shipped detection MixUp config: its training data really are mixed, boxes of both
images kept, and a distiller trains on them (the teacher reads the same batch)."""
import os.path as osp

import numpy as np
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmdist.datasets import SHAPE_CLASSES
from mmdist.testing._detection import DET_CONFIGS, tiny_retinanet, write_config

MIXUP = osp.join(DET_CONFIGS, 'dist-mixup_retinanet-x101-64x4d_retinanet-r50_fpn_2x_coco.py')


def _mixup_config(tmp_path, coco_root, extra: str = '') -> Config:
    path = write_config(
        str(tmp_path / 'mixup_tiny.py'), f'_base_ = [{MIXUP!r}]\n' + extra +
        f'train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False, '
        f'dataset=dict(dataset=dict(data_root={coco_root + "/"!r}, '
        f'ann_file="annotations/instances_train.json", data_prefix=dict(img="images/train/"), '
        f'metainfo=dict(classes={SHAPE_CLASSES!r}), filter_cfg=dict(filter_empty_gt=True, '
        f'min_size=0))))\n')
    return Config.fromfile(path)


def test_mixup_config_mixes_images_and_keeps_both_images_boxes(tmp_path, coco_root):
    cfg = _mixup_config(tmp_path, coco_root)
    assert cfg.train_dataloader.dataset.type == 'MultiImageMixDataset'
    init_default_scope('mmdet')
    from mmdet.registry import DATASETS
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    inner = dataset.dataset
    np.random.seed(0)
    mixed = 0
    for index in range(len(dataset)):
        sample = dataset[index]['data_samples']
        own = inner[index]  # the image alone, boxes before MixUp
        # MixUp adds the partner's boxes (some may be cropped away): never fewer boxes.
        assert len(sample.gt_instances) >= len(own['gt_bboxes'])
        mixed += len(sample.gt_instances) > len(own['gt_bboxes'])
    assert mixed > 0  # at least one image received boxes from a partner


def test_distiller_trains_on_the_mixup_config(tmp_path, coco_root):
    """One training iteration of a tiny distiller on the MixUp config (stock model keys)."""
    from mmengine.runner import Runner

    from mmdist.testing import save_teacher_checkpoint
    teacher_cfg = write_config(
        str(tmp_path / 'teacher.py'),
        "_base_ = ['mmdet::retinanet/retinanet_r50_fpn_2x_coco.py']\n"
        f'model = {tiny_retinanet(16, 32)!r}\n')
    teacher_ckpt = save_teacher_checkpoint(teacher_cfg, str(tmp_path / 'teacher.pth'))
    cfg = _mixup_config(
        tmp_path, coco_root, f'model = dict(student={tiny_retinanet(8, 16)!r}, '
        f'teacher_cfg={teacher_cfg!r}, teacher_ckpt={teacher_ckpt!r})\n')
    cfg.train_dataloader.dataset.pipeline[0].img_scale = (64, 64)
    cfg.train_dataloader.dataset.pipeline[1].scale = (64, 64)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=1, val_interval=10)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint = None
    cfg.work_dir = str(tmp_path / 'work')
    cfg.visualizer.name = 'mixup_config_test'
    cfg.experiment_name = 'mixup_config_test'
    runner = Runner.from_cfg(cfg)
    runner.train()
    scalars = runner.message_hub.log_scalars
    assert np.isfinite(scalars['train/loss_dist_cls'].current())
    assert scalars['train/loss_dist_cls'].current() > 0
