# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""End-to-end test helpers: train through tools/train.py, evaluate through tools/test.py,
export the student and evaluate it with its own library's tools/test.py, in-process. The
tools are passed in as modules (the tests load them from the checkout)."""
import glob
import importlib
import json
import math
import os.path as osp
import re
import runpy
import sys
from types import ModuleType
from typing import Dict, List, Optional, Sequence, Tuple

import torch
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


def periodic_checkpoint(work_dir: str) -> str:
    """The run's only ``iter_N.pth`` / ``epoch_N.pth`` (a ``save_best`` checkpoint hook also
    writes ``best_<metric>_iter_N.pth``)."""
    (path, ) = [path for path in glob.glob(osp.join(work_dir, '*.pth'))
                if re.fullmatch(r'(iter|epoch)_\d+\.pth', osp.basename(path))]
    return path


def train_then_test(train_tool: ModuleType, test_tool: ModuleType, config: str, work_dir: str,
                    dist_keys: Sequence[str],
                    test_options: Sequence[str] = ()) -> Tuple[Runner, Dict]:
    """Train with ``tools/train.py`` (``train_tool``), check logs and checkpoint, test the
    checkpoint with ``tools/test.py`` (``test_tool``); return (runner, metrics)."""
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

    ckpt_path = periodic_checkpoint(work_dir)
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


def export_run_student(export_tool: ModuleType, config: str, work_dir: str,
                       out_dir: str) -> Dict[str, str]:
    """``tools/model_converters/export_student.py`` (``export_tool``) on the run's (only)
    periodic checkpoint."""
    ckpt = periodic_checkpoint(work_dir)
    export_tool.main([config, ckpt, out_dir, '--name', 'student'])
    return dict(config=osp.join(out_dir, 'student.py'),
                checkpoint=osp.join(out_dir, 'student.pth'))


def library_test(scope: str, config: str, checkpoint: str, work_dir: str,
                 cfg_options: Sequence[str] = (), out: Optional[str] = None) -> Dict[str, float]:
    """``python <scope>/tools/test.py CONFIG CHECKPOINT [--out OUT]`` of the installed
    mmdet / mmseg / mmpretrain (their ``.mim/tools/test.py``), run in this process;
    returns the metrics its logger wrote (``<work_dir>/<timestamp>/<timestamp>.json``).
    ``out``: mmdet and mmpretrain dump predictions to this .pkl, mmseg writes the
    predicted label maps as PNGs into this folder."""
    package = osp.dirname(importlib.import_module(scope).__file__)
    script = osp.join(package, '.mim', 'tools', 'test.py')
    # Visualizers are named instances: a run in the same process needs its own name.
    options = [f'visualizer.name={scope}_plain_{osp.basename(work_dir)}', *cfg_options]
    argv = sys.argv
    sys.argv = [script, config, checkpoint, '--work-dir', work_dir,
                *(['--out', out] if out else []), '--cfg-options', *options]
    try:
        runpy.run_path(script, run_name='__main__')
    finally:
        sys.argv = argv
    (log, ) = glob.glob(osp.join(work_dir, '*', '*.json'))
    with open(log, encoding='utf-8') as f:
        (metrics, ) = [json.loads(line) for line in f]
    return metrics
