# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""End to end: tools/train.py -> checkpoint -> tools/test.py on synthetic COCO data."""
import math
import os
import os.path as osp
import subprocess
import sys

import torch
from demo.paths import ROOT as REPO, load_tool
from mmengine.fileio import load

from mmdist.testing._detection import (write_detr_configs, write_faster_rcnn_configs,
                                       write_retinanet_configs)
from mmdist.testing._e2e import (assert_teacher_is_checkpoint, export_run_student, library_test,
                                 read_scalars, train_then_test)

#: CocoMetric's box metrics (AP_m and AP_l are -1: the 64 x 64 images have no medium or
#: large objects).
COCO_KEYS = [f'coco/bbox_{k}' for k in ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l')]


def train_test_and_compare_with_plain_mmdet(paths, tmp_path, score_thr_key):
    """Train and test (mmdist's tools), then export the student and evaluate it with
    mmdet's own tools/test.py (its test pipeline, CocoMetric, pycocotools): the same
    detections, box for box, and the same COCO metrics."""
    ours_out, plain_out = str(tmp_path / 'ours.pkl'), str(tmp_path / 'plain.pkl')
    runner, metrics = train_then_test(load_tool('train'), load_tool('test'), paths['config'],
                                      str(tmp_path / 'work'), ['loss_dist_cls'],
                                      [f'model.student.{score_thr_key}=0.0', '--out', ours_out])
    student = export_run_student(load_tool('model_converters/export_student'),
                                 paths['config'], str(tmp_path / 'work'),
                                 str(tmp_path / 'export'))
    plain = library_test('mmdet', student['config'], student['checkpoint'],
                         str(tmp_path / 'plain_test'), [f'model.{score_thr_key}=0.0'],
                         out=plain_out)
    assert {key: plain[key] for key in COCO_KEYS} == {key: metrics[key] for key in COCO_KEYS}
    ours = sorted(load(ours_out), key=lambda sample: sample['img_id'])
    theirs = sorted(load(plain_out), key=lambda sample: sample['img_id'])
    assert [s['img_id'] for s in ours] == [s['img_id'] for s in theirs] and len(ours) == 2
    for a, b in zip(ours, theirs):
        assert len(a['pred_instances']['scores']) > 0  # score_thr 0: every kept box
        for field in ('bboxes', 'scores', 'labels'):
            assert torch.equal(a['pred_instances'][field], b['pred_instances'][field]), field
    return runner, metrics


def test_retinanet_distillation_train_then_test(tmp_path, coco_root):
    paths = write_retinanet_configs(str(tmp_path), coco_root)
    runner, _ = train_test_and_compare_with_plain_mmdet(paths, tmp_path, 'test_cfg.score_thr')
    assert_teacher_is_checkpoint(runner, paths)


def test_faster_rcnn_distillation_train_then_test(tmp_path, coco_root):
    paths = write_faster_rcnn_configs(str(tmp_path), coco_root)
    runner, _ = train_test_and_compare_with_plain_mmdet(paths, tmp_path,
                                                        'test_cfg.rcnn.score_thr')
    assert_teacher_is_checkpoint(runner, paths)


def test_dino_distillation_train_then_test(tmp_path, coco_root):
    """The shipped DINO config (its student shrunk, a tiny Swin DINO teacher), box
    distillation on: trains, tests, and its exported student gives plain mmdet's
    detections and metrics."""
    paths = write_detr_configs(str(tmp_path), coco_root, 'dino', query_layers='all',
                               loss_bbox=dict(type='mmdet.L1Loss', loss_weight=5.0))
    # DETR heads have no score threshold: every query's best class is kept (max_per_img).
    runner, _ = train_test_and_compare_with_plain_mmdet(paths, tmp_path, 'test_cfg.score_thr')
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
    output = result.stdout + result.stderr
    assert 'distributed run over gloo on CPU (rank 0 of 2)' in output
    # Each rank frees its process group before exiting (shutdown_distributed): nothing of the
    # run (DDP wrapper, torch's own modules) still holds it.
    assert 'process group is still referenced' not in output
    # 4 images, 2 per process per step: one iteration per epoch with 2 processes.
    scalars = [s for s in read_scalars(work_dir) if 'loss' in s]
    assert len(scalars) == 1 and math.isfinite(scalars[0]['loss_dist_cls'])
    assert osp.isfile(osp.join(work_dir, 'epoch_1.pth'))
