# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""projects/teacher_ladder/measure_cost.py: the default short run of every ladder is one
unit of its schedule's scale (one epoch for the classification ladders, whose schedules
are 10-60 epochs; 40 iterations for segmentation, 500-1500 iterations)."""
import importlib.util
import os.path as osp

import pytest
from mmengine.config import Config

from demo.paths import ROOT as REPO
from projects.teacher_ladder.teacher_ladder.ladder import TASKS


def _load_measure_cost():
    path = osp.join(REPO, 'projects', 'teacher_ladder', 'measure_cost.py')
    spec = importlib.util.spec_from_file_location('teacher_ladder_measure_cost', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('name', sorted(TASKS))
def test_default_short_run_is_a_small_part_of_every_schedule(name):
    task = TASKS[name]
    length = _load_measure_cost().default_length(name)
    for config in [task.student] + [t.config for t in task.teachers]:
        train_cfg = Config.fromfile(task.config(config)).train_cfg
        full = train_cfg.get('max_epochs', train_cfg.get('max_iters'))
        assert 1 <= length <= full / 10, (config, length, full)
