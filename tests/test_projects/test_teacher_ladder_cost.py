# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""projects/teacher_ladder/measure_cost.py: the default short run of every ladder is one
unit of its schedule's scale (one epoch for the classification ladders, whose schedules
are 10-60 epochs; 40 iterations for segmentation, 500-1500 iterations)."""

import pytest
from mmengine.config import Config

from projects.teacher_ladder import measure_cost
from projects.teacher_ladder.teacher_ladder.ladder import TASKS


@pytest.mark.parametrize('name', sorted(TASKS))
def test_default_short_run_is_a_small_part_of_every_schedule(name):
    task = TASKS[name]
    length = measure_cost.default_length(name)
    for config in [task.student] + [t.config for t in task.teachers]:
        train_cfg = Config.fromfile(task.config(config)).train_cfg
        full = train_cfg.get('max_epochs', train_cfg.get('max_iters'))
        assert 1 <= length <= full / 10, (config, length, full)
