# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""projects/teacher_ladder/pilot.py --tiny: the paper-regime ladder's student and teachers
trained alone (no distillation), each listed with the accuracy its run stored, and a
second call reusing the runs."""
import json
import os
import os.path as osp

import pytest

from projects.teacher_ladder import pilot
from projects.teacher_ladder.teacher_ladder.ladder import TASKS


def test_pilot_trains_the_ladder_alone_and_reuses_runs(tmp_path):
    task = TASKS['cls_paper']
    argv = ['--task', 'cls_paper', '--tiny', '--work-dir', str(tmp_path)]
    rows = pilot.main(argv)
    expected = [task.config(task.student)] + [task.config(t.config) for t in task.teachers]
    assert [row['config'] for row in rows] == expected
    with open(tmp_path / 'pilot_cls_paper.json', encoding='utf-8') as f:
        written = json.load(f)
    assert written['tiny'] is True and written['runs'] == rows
    entries = []
    for row in rows:
        path = osp.join(row['work_dir'], 'entry.json')
        with open(path, encoding='utf-8') as f:
            entry = json.load(f)
        assert entry['config'] == row['config']
        assert row['metric'] == pytest.approx(entry['metrics']['accuracy/top1'])
        assert row['iterations'] == entry['iterations'] == 1  # --tiny: one epoch of 12
        assert row['num_params'] == entry['num_params']
        entries.append((path, os.stat(path).st_mtime_ns))
    again = pilot.main(argv)
    assert again == rows
    # Nothing retrained: every run's entry.json is the one the first call wrote.
    assert [(p, os.stat(p).st_mtime_ns) for p, _ in entries] == entries
