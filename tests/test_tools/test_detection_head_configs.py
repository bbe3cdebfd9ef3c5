# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""The shipped RTMDet and cross-head configs: built from their stock bases (shrunk) and
trained through tools/train.py on the synthetic COCO data, with the stock RTMDet
recipe's hooks (EMA, pipeline switch) and mmdist.StopDistillHook; checked against
mmdet's model zoo metadata; the dist_det metafile lists every shipped config."""
import glob
import os.path as osp

import mmdet
import pytest
import torch
import yaml
from demo.paths import ROOT as REPO, load_tool
from mmengine.config import Config

from mmdist.testing._detection import DET_CONFIGS, write_dense_configs
from mmdist.testing._e2e import (assert_teacher_is_checkpoint, export_run_student,
                                 periodic_checkpoint)

pytestmark = pytest.mark.usefixtures('one_cpu_thread')

MMDET_CONFIGS = osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs')
RTMDET = 'dist_rtmdet-l_rtmdet-s_8xb32-300e_coco.py'
CROSS_HEAD = {'crosshead_gfl_retinanet': 'dist-crosshead_gfl-r101_retinanet-r50_fpn_2x_coco.py',
              'crosshead_rtmdet_atss': 'dist-crosshead_rtmdet-l_atss-r50_fpn_1x_coco.py'}


def _stock(path: str) -> Config:
    return Config.fromstring(f'_base_ = [{path!r}]\n', '.py')


def _without_scope(value):
    if isinstance(value, dict):
        return {k: _without_scope(v) for k, v in value.items() if k != '_scope_'}
    if isinstance(value, (list, tuple)):
        return [_without_scope(v) for v in value]
    return value


def _zoo_weights(teacher_cfg: str):
    folder, name = teacher_cfg.split('::')[1].split('/')
    with open(osp.join(MMDET_CONFIGS, folder, 'metafile.yml'), encoding='utf-8') as f:
        models = yaml.safe_load(f)['Models']
    return {m['Weights'] for m in models if m.get('Config') == f'configs/{folder}/{name}'}


def test_shipped_configs_keep_their_stock_recipes_and_zoo_teachers():
    """The student is the stock config's model, the teacher checkpoint the Weights of
    mmdet's metafile for the teacher config; RTMDet: the stock hooks unchanged and
    distillation stopping when the pipeline switches."""
    for name, stock in ((RTMDET, 'mmdet::rtmdet/rtmdet_s_8xb32-300e_coco.py'),
                        (CROSS_HEAD['crosshead_gfl_retinanet'],
                         'mmdet::retinanet/retinanet_r50_fpn_2x_coco.py'),
                        (CROSS_HEAD['crosshead_rtmdet_atss'],
                         'mmdet::atss/atss_r50_fpn_1x_coco.py')):
        cfg, base = Config.fromfile(osp.join(DET_CONFIGS, name)), _stock(stock)
        assert _without_scope(cfg.model.student.to_dict()) == _without_scope(
            base.model.to_dict()), name
        assert cfg.model.teacher_ckpt in _zoo_weights(cfg.model.teacher_cfg), name
        assert cfg.model.get('cross_head', False) == (name != RTMDET)
        assert cfg.train_cfg == base.train_cfg and cfg.param_scheduler == base.param_scheduler
    cfg, base = Config.fromfile(osp.join(DET_CONFIGS, RTMDET)), _stock(
        'mmdet::rtmdet/rtmdet_s_8xb32-300e_coco.py')
    stock_hooks = _without_scope(base.custom_hooks)
    assert _without_scope(cfg.custom_hooks[:2]) == stock_hooks
    assert cfg.custom_hooks[2] == dict(type='mmdist.StopDistillHook',
                                       stop_epoch=base.max_epochs - base.stage2_num_epochs)
    assert stock_hooks[1]['switch_epoch'] == cfg.custom_hooks[2]['stop_epoch'] == 280


def test_metafile_lists_every_shipped_detection_config():
    shipped = sorted(glob.glob(osp.join(DET_CONFIGS, '*.py')))
    with open(osp.join(DET_CONFIGS, 'metafile.yml'), encoding='utf-8') as f:
        listed = [m['Config'] for m in yaml.safe_load(f)['Models']]
    assert sorted(listed) == [f'configs/dist_det/{osp.basename(p)}' for p in shipped]
    with open(osp.join(REPO, 'model-index.yml'), encoding='utf-8') as f:
        assert 'configs/dist_det/metafile.yml' in yaml.safe_load(f)['Import']


def _stage2_run(tmp_path, coco_root):
    """The shrunk RTMDet config for 2 epochs: its pipeline switches, and distillation stops,
    at epoch 1 (0-based), the second-stage pipeline being the first one without flip."""
    paths = write_dense_configs(str(tmp_path), coco_root, 'rtmdet', teacher_init=False)
    cfg = Config.fromfile(paths['config'])
    stage2 = [t for t in cfg.train_pipeline if t['type'] != 'RandomFlip']
    switch, stop = cfg.custom_hooks[1], cfg.custom_hooks[2]
    assert (switch.type, stop.type) == ('PipelineSwitchHook', 'mmdist.StopDistillHook')
    switch.update(switch_epoch=1, switch_pipeline=stage2)
    stop.stop_epoch = 1
    cfg.train_cfg.max_epochs = 2
    cfg.default_hooks.checkpoint.interval = 2
    paths['config'] = str(tmp_path / 'rtmdet_two_stages.py')
    cfg.dump(paths['config'])
    return paths, stage2


def test_rtmdet_distillation_stops_when_the_pipeline_switches(tmp_path, coco_root):
    """tools/train.py, 2 epochs of 2 steps: EMA on, the stock PipelineSwitchHook and
    StopDistillHook at epoch 1. Epoch 1 distils (teacher forward, loss_dist_cls > 0),
    epoch 2 trains the student alone (loss_dist_cls logged as 0) on the switched pipeline;
    the checkpoint holds the EMA student and no teacher; the teacher never changed."""
    paths, stage2 = _stage2_run(tmp_path, coco_root)
    work_dir = str(tmp_path / 'work')
    runner = load_tool('train').build_runner([paths['config'], '--work-dir', work_dir,
                                              '--cfg-options', 'visualizer.name=rtmdet_stop'])
    teacher_runs = []
    runner.model.teacher.backbone.register_forward_hook(
        lambda *args: teacher_runs.append(runner.epoch))
    runner.train()
    # Every step's value (the logs show means over a window of steps).
    values = runner.message_hub.get_scalar('train/loss_dist_cls').data[0].tolist()
    assert len(values) == 4
    assert values[0] > 0 and values[1] > 0 and values[2:] == [0.0, 0.0]
    assert teacher_runs == [0, 0]  # the teacher ran in the first epoch's two steps only
    assert runner.model.distill_stopped
    pipeline = [type(t).__name__ for t in runner.train_dataloader.dataset.pipeline.transforms]
    assert pipeline == [t['type'] for t in stage2]
    checkpoint = torch.load(periodic_checkpoint(work_dir), map_location='cpu')
    assert any(k.startswith('module.student.') for k in checkpoint['ema_state_dict'])
    assert all(k.startswith('student.') for k in checkpoint['state_dict'])
    assert_teacher_is_checkpoint(runner, paths)


def test_cross_head_config_trains_and_exports_the_student_alone(tmp_path, coco_root):
    """The GFL -> RetinaNet config, one epoch (2 steps) through tools/train.py: the adapters
    (16 -> 32 channels) are trained and saved in the distillation checkpoint; the exported
    student has none of them and loads into the plain mmdet student config strictly. (Both
    cross-head configs run a training step in test_units.py, and their loss values are
    checked in test_loss_values.py.)"""
    pair = 'crosshead_gfl_retinanet'
    paths = write_dense_configs(str(tmp_path), coco_root, pair, teacher_init=False)
    work_dir = str(tmp_path / 'work')
    runner = load_tool('train').build_runner([paths['config'], '--work-dir', work_dir,
                                              '--cfg-options', f'visualizer.name={pair}'])
    runner.train()
    values = runner.message_hub.get_scalar('train/loss_dist_cls').data[0]
    assert len(values) == 2 and (values > 0).all()
    state = torch.load(periodic_checkpoint(work_dir), map_location='cpu')['state_dict']
    adapters = [k for k in state if k.startswith('unit.adapters.')]
    assert adapters and not any(k.startswith('teacher') for k in state)
    exported = export_run_student(load_tool('model_converters/export_student'),
                                  paths['config'], work_dir, str(tmp_path / 'export'))
    student = torch.load(exported['checkpoint'], map_location='cpu')['state_dict']
    assert not any(k.startswith('unit.') or k.startswith('student.') for k in student)
    from mmdet.registry import MODELS
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet'):
        plain = MODELS.build(Config.fromfile(exported['config']).model)
    plain.load_state_dict(student, strict=True)
    assert_teacher_is_checkpoint(runner, paths)


def test_shipped_dino_config_keeps_the_stock_recipe_and_zoo_teacher():
    """The DINO config: the stock DINO-4scale R50 model and schedule as the student (its
    matcher included), the DINO-5scale Swin-L teacher with the Weights of mmdet's
    metafile, DIST on the final decoder layer, no box terms."""
    cfg = Config.fromfile(osp.join(DET_CONFIGS, 'dist_dino-5scale-swin-l_dino-4scale-r50_'
                                   '8xb2-12e_coco.py'))
    base = _stock('mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py')
    assert _without_scope(cfg.model.student.to_dict()) == _without_scope(base.model.to_dict())
    assert cfg.model.teacher_cfg == 'mmdet::dino/dino-5scale_swin-l_8xb2-12e_coco.py'
    assert cfg.model.teacher_ckpt in _zoo_weights(cfg.model.teacher_cfg)
    assert cfg.train_cfg == base.train_cfg and cfg.param_scheduler == base.param_scheduler
    assert cfg.optim_wrapper == base.optim_wrapper
    assert cfg.model.loss_cls == dict(type='mmdist.DISTLoss', activation='sigmoid', tau=1.0,
                                      loss_weight=1.0)
    assert 'query_layers' not in cfg.model and 'loss_bbox' not in cfg.model
