# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""End to end: tools/train.py -> checkpoint -> tools/test.py on synthetic COCO data."""
import math
import os
import os.path as osp
import subprocess
import sys

from conftest import REPO
from detection_helpers import write_faster_rcnn_configs, write_retinanet_configs
from e2e_helpers import assert_teacher_is_checkpoint, read_scalars, train_then_test


def test_retinanet_distillation_train_then_test(tmp_path, coco_root):
    paths = write_retinanet_configs(str(tmp_path), coco_root)
    runner, metrics = train_then_test(paths['config'], str(tmp_path / 'work'),
                                      ['loss_dist_cls'], ['model.student.test_cfg.score_thr=0.0'])
    assert 0.0 <= metrics['coco/bbox_mAP'] <= 1.0
    assert_teacher_is_checkpoint(runner, paths)


def test_faster_rcnn_distillation_train_then_test(tmp_path, coco_root):
    paths = write_faster_rcnn_configs(str(tmp_path), coco_root)
    runner, metrics = train_then_test(paths['config'], str(tmp_path / 'work'),
                                      ['loss_dist_cls'],
                                      ['model.student.test_cfg.rcnn.score_thr=0.0'])
    assert 0.0 <= metrics['coco/bbox_mAP'] <= 1.0
    assert_teacher_is_checkpoint(runner, paths)


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
