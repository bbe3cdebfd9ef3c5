# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""projects/teacher_ladder/run_study.py --task seg --tiny, one seed: the segmentation
ladder's configs (four DeepLabV3 teachers, the student alone, KD tau 4 / tau 1 and DIST
students tested next to their teacher) run end to end, and the tables show the numbers
of results.json."""
import json

import pytest
from test_teacher_ladder import check_tables

from projects.teacher_ladder import run_study


@pytest.fixture(scope='module')
def tiny_seg(tmp_path_factory):
    paths = run_study.main(['--task', 'seg', '--tiny', '--seeds', '0', '--work-dir',
                                 str(tmp_path_factory.mktemp('ladder_seg'))])
    with open(paths['results'], encoding='utf-8') as f:
        results = json.load(f)
    with open(paths['report'], encoding='utf-8') as f:
        report = f.read()
    return results, report


def test_every_run_and_the_tables(tiny_seg):
    results, report = tiny_seg
    task = results['tasks']['seg']
    assert task['runs_done'] == task['runs_planned'] == 4 + 1 + 4 * 3
    runs = task['runs']
    teachers = {r['teacher']: r for r in runs if r['role'] == 'teacher'}
    for run in runs:
        assert 0.0 <= run['metrics']['mIoU'] <= 100.0
        if run['role'] in ('kd_tau4', 'kd_tau1', 'dist'):
            m = run['metrics']
            # Pixel accuracy of both networks under the paired loop: the teacher's is the
            # one it has when tested alone (mmseg's aAcc, percent).
            assert 100 * m['faith/acc_teacher'] == pytest.approx(
                teachers[run['teacher']]['metrics']['aAcc'], abs=0.01)
            assert 0.0 <= m['faith/agreement'] <= 1.0
    student = next(r for r in runs if r['role'] == 'student')
    assert sorted(student['paired']) == sorted(teachers)
    check_tables(report, task['summary'], ['kd_tau4', 'kd_tau1', 'dist'], label='mIoU')
