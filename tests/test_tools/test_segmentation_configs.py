# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""The shipped segmentation configs: teacher checkpoints against mmseg's own model zoo
metadata; the transformer-teacher / transformer-student configs, built from their stock
bases (shrunk), train on tiny data (end to end with export: test_segmentation_e2e.py)."""
import glob
import math
import os.path as osp

import mmseg
import pytest
import torch
import yaml
from demo.paths import ROOT as REPO
from mmengine.config import Config
from mmengine.runner import Runner

from mmdist.testing._e2e import assert_teacher_is_checkpoint
from mmdist.testing._segmentation import SEG_CONFIGS, write_tiny_shipped_config

pytestmark = pytest.mark.usefixtures('one_cpu_thread')

MMSEG_CONFIGS = osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs')
SEGFORMER_PSPNET = 'dist_segformer-mit-b5_pspnet-r18-d8_4xb2-80k_cityscapes-512x1024.py'
MASK2FORMER_PSPNET = 'dist_mask2former-swin-b_pspnet-r18-d8_4xb2-80k_cityscapes-512x1024.py'


def _zoo_weights(config: str):
    """The ``Weights`` of mmseg's metafile entries whose ``Config`` is ``configs/<config>``."""
    with open(osp.join(MMSEG_CONFIGS, osp.dirname(config), 'metafile.yaml'),
              encoding='utf-8') as f:
        models = yaml.safe_load(f)['Models']
    return {m['Weights'] for m in models if m.get('Config') == f'configs/{config}'}


def test_shipped_configs_match_mmseg_zoo_and_metafile():
    """Every teacher checkpoint URL is the one mmseg's metafile gives for the teacher
    config; the dist_seg metafile lists exactly the shipped configs."""
    shipped = sorted(glob.glob(osp.join(SEG_CONFIGS, '*.py')))
    assert len(shipped) == 8
    for path in shipped:
        cfg = Config.fromfile(path)
        assert cfg.model.type == 'mmdist.SegmentationDistiller', path
        scope, teacher = cfg.model.teacher_cfg.split('::')
        assert scope == 'mmseg', path
        assert cfg.model.teacher_ckpt in _zoo_weights(teacher), path
        assert cfg.model.student.type == 'EncoderDecoder'
    with open(osp.join(SEG_CONFIGS, 'metafile.yml'), encoding='utf-8') as f:
        listed = [m['Config'] for m in yaml.safe_load(f)['Models']]
    assert sorted(listed) == [f'configs/dist_seg/{osp.basename(p)}' for p in shipped]
    with open(osp.join(REPO, 'model-index.yml'), encoding='utf-8') as f:
        assert 'configs/dist_seg/metafile.yml' in yaml.safe_load(f)['Import']


# SegFormer-B5 -> B0 trains, tests and exports in test_segmentation_e2e.py.
@pytest.mark.parametrize('shipped, student_head, teacher_head, dist_keys', [
    (SEGFORMER_PSPNET, 'PSPHead', 'SegformerHead', ['loss_dist_decode', 'loss_dist_aux']),
    (MASK2FORMER_PSPNET, 'PSPHead', 'Mask2FormerHead', ['loss_dist_decode', 'loss_dist_aux']),
])
def test_transformer_config_trains_a_step(tmp_path, cityscapes_root, shipped, student_head,
                                          teacher_head, dist_keys):
    """The shipped config, its stock student and stock teacher configs shrunk, runs one
    training iteration: finite distillation losses, teacher unchanged and unsaved."""
    paths = write_tiny_shipped_config(str(tmp_path), cityscapes_root, shipped)
    cfg = Config.fromfile(paths['config'])
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=1, val_interval=10)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False, interval=1)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.visualizer.name = cfg.experiment_name = f'seg_config_{osp.splitext(shipped)[0]}'
    runner = Runner.from_cfg(cfg)
    model = runner.model
    assert type(model.student.decode_head).__name__ == student_head
    assert type(model.teacher.decode_head).__name__ == teacher_head
    runner.train()
    scalars = runner.message_hub.log_scalars
    for key in dist_keys:
        assert math.isfinite(scalars[f'train/{key}'].current())
        assert scalars[f'train/{key}'].current() > 0
    assert_teacher_is_checkpoint(runner, paths)
    (ckpt, ) = glob.glob(str(tmp_path / 'work' / 'iter_1.pth'))
    keys = torch.load(ckpt, map_location='cpu')['state_dict']
    assert keys and all(k.startswith('student.') for k in keys)
