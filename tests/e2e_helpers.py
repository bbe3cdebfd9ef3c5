# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Train through tools/train.py, then evaluate through tools/test.py, in-process."""
import glob
import json
import math
import os.path as osp
from typing import Dict, List, Sequence, Tuple

import torch
from conftest import load_tool
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmdist.models.utils.conv_bn import fold_batch_norms
from mmdist.models.utils.teacher import build_teacher


class SnapshotStudent(Hook):
    """Keeps the student's weights as training starts (after init_weights)."""

    def before_train(self, runner):
        self.initial = {k: v.clone() for k, v in runner.model.student.state_dict().items()}


def read_scalars(work_dir: str) -> List[Dict]:
    (path, ) = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    with open(path, encoding='utf-8') as f:
        return [json.loads(line) for line in f]


def train_then_test(config: str, work_dir: str, dist_keys: Sequence[str],
                    test_options: Sequence[str] = ()) -> Tuple[Runner, Dict]:
    """Train, check logs and checkpoint, test the checkpoint; return (runner, metrics)."""
    train_tool, test_tool = load_tool('train'), load_tool('test')
    # OpenMMLab configs name the visualizer 'visualizer'; runs in one process need distinct
    # names, or the second run logs into the first one's folder.
    name = f'visualizer.name={osp.basename(osp.dirname(work_dir))}'
    runner = train_tool.build_runner([config, '--work-dir', work_dir, '--cfg-options', name])
    snapshot = SnapshotStudent()
    runner.register_hook(snapshot)
    runner.train()

    scalars = [s for s in read_scalars(work_dir) if 'loss' in s]
    assert scalars, 'no training losses logged'
    for entry in scalars:
        for key in dist_keys:
            assert math.isfinite(entry[key]), entry
        assert math.isfinite(entry['loss'])

    (ckpt_path, ) = glob.glob(osp.join(work_dir, '*_*.pth'))
    ckpt = torch.load(ckpt_path, map_location='cpu')  # weights_only=True (torch >= 2.6)
    keys = list(ckpt['state_dict'])
    assert keys and all(k.startswith('student.') for k in keys), keys[:5]
    changed = [k for k, v in snapshot.initial.items()
               if v.is_floating_point() and not torch.equal(v, ckpt['state_dict']['student.' + k])]
    assert changed, 'training did not change the student'

    metrics = test_tool.main([config, ckpt_path, '--work-dir', work_dir + '_test',
                              '--cfg-options', name + '_test', *test_options])
    return runner, metrics


def assert_teacher_is_checkpoint(runner: Runner, paths: dict) -> None:
    """After training, the distiller's teacher is exactly the checkpoint's teacher with its
    BatchNorms folded (the default ``teacher_fuse_conv_bn=True``)."""
    reference = build_teacher(paths['teacher_cfg'], paths['teacher_ckpt'])
    stock_keys = set(reference.state_dict())
    folded = fold_batch_norms(reference)  # 0 for a teacher without BatchNorms (Swin)
    reference = reference.state_dict()
    teacher = runner.model.teacher.state_dict()
    assert teacher.keys() == reference.keys()
    assert (set(teacher) != stock_keys) == (folded > 0)
    for k, v in teacher.items():
        assert torch.equal(v, reference[k]), f'teacher weight {k} changed'
