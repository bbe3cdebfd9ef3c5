# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""End to end: tools/train.py -> checkpoint -> tools/test.py on synthetic COCO data."""
import glob
import json
import math
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from conftest import REPO, load_tool
from detection_helpers import write_config, write_faster_rcnn_configs, write_retinanet_configs
from mmengine.hooks import Hook


class SnapshotStudent(Hook):
    """Keeps the student's weights as training starts (after init_weights)."""

    def before_train(self, runner):
        self.initial = {k: v.clone() for k, v in runner.model.student.state_dict().items()}


def read_scalars(work_dir):
    (path, ) = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    with open(path, encoding='utf-8') as f:
        return [json.loads(line) for line in f]


def train_and_test(config, work_dir, score_thr_option):
    train_tool, test_tool = load_tool('train'), load_tool('test')
    # mmdet names its visualizer 'visualizer'; runs in one process need distinct names.
    name = f'visualizer.name={osp.basename(osp.dirname(work_dir))}'
    runner = train_tool.build_runner([config, '--work-dir', work_dir, '--cfg-options', name])
    snapshot = SnapshotStudent()
    runner.register_hook(snapshot)
    runner.train()

    scalars = [s for s in read_scalars(work_dir) if 'loss' in s]
    assert scalars, 'no training losses logged'
    for entry in scalars:
        assert math.isfinite(entry['loss_dist_cls']), entry
        assert math.isfinite(entry['loss'])

    ckpt_path = osp.join(work_dir, 'epoch_1.pth')
    ckpt = torch.load(ckpt_path, map_location='cpu')  # weights_only=True (torch >= 2.6)
    keys = list(ckpt['state_dict'])
    assert keys and all(k.startswith('student.') for k in keys), keys[:5]
    changed = [k for k, v in snapshot.initial.items()
               if v.is_floating_point() and not torch.equal(v, ckpt['state_dict']['student.' + k])]
    assert changed, 'training did not change the student'

    metrics = test_tool.main([config, ckpt_path, '--work-dir', work_dir + '_test',
                              '--cfg-options', score_thr_option, name + '_test'])
    assert 0.0 <= metrics['coco/bbox_mAP'] <= 1.0
    return runner


def assert_teacher_is_checkpoint(runner, teacher_ckpt):
    reference = torch.load(teacher_ckpt, map_location='cpu')['state_dict']
    teacher = runner.model.teacher.state_dict()
    assert teacher.keys() == reference.keys()
    for k, v in teacher.items():
        assert torch.equal(v, reference[k]), f'teacher weight {k} changed'


def test_retinanet_distillation_train_then_test(tmp_path, coco_root):
    paths = write_retinanet_configs(str(tmp_path), coco_root)
    runner = train_and_test(paths['config'], str(tmp_path / 'work'),
                            'model.student.test_cfg.score_thr=0.0')
    assert_teacher_is_checkpoint(runner, paths['teacher_ckpt'])


def test_faster_rcnn_distillation_train_then_test(tmp_path, coco_root):
    paths = write_faster_rcnn_configs(str(tmp_path), coco_root)
    runner = train_and_test(paths['config'], str(tmp_path / 'work'),
                            'model.student.test_cfg.rcnn.score_thr=0.0')
    assert_teacher_is_checkpoint(runner, paths['teacher_ckpt'])


def test_dist_train_two_cpu_processes(tmp_path, coco_root):
    """tools/dist_train.sh CONFIG 2 runs two processes over gloo on a CPU machine."""
    paths = write_retinanet_configs(str(tmp_path), coco_root)
    env = dict(os.environ, PATH=osp.dirname(sys.executable) + os.pathsep + os.environ['PATH'],
               PORT=str(29500 + os.getpid() % 1000))
    work_dir = str(tmp_path / 'dist')
    result = subprocess.run(
        ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), paths['config'], '2',
         '--work-dir', work_dir, '--cfg-options', 'train_cfg.val_interval=2'],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert 'distributed run over gloo on CPU (rank 0 of 2)' in result.stdout + result.stderr
    # 4 images, 2 per process per step: one iteration per epoch with 2 processes.
    scalars = [s for s in read_scalars(work_dir) if 'loss' in s]
    assert len(scalars) == 1 and math.isfinite(scalars[0]['loss_dist_cls'])
    assert osp.isfile(osp.join(work_dir, 'epoch_1.pth'))
