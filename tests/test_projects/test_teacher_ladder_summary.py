# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""The teacher ladder's summary, tables and findings on hand-made results of three seeds
(no training): gains paired by seed, sample standard deviations, ``mean ± std`` cells,
missing runs, and the stated trend."""
import math

import pytest

from projects.teacher_ladder.teacher_ladder.ladder import CLASSIFICATION
from projects.teacher_ladder.teacher_ladder.report import shared_note
from projects.teacher_ladder.teacher_ladder.runs import RunResult
from projects.teacher_ladder.teacher_ladder.study import TaskRuns
from projects.teacher_ladder.teacher_ladder.summary import findings, summarize, table_lines

METHODS = ['kd_tau4', 'kd_tau1', 'dist']
TEACHERS = [t.name for t in CLASSIFICATION.teachers]
#: Teacher accuracies (not in ladder order: the findings sort by accuracy).
TEACHER_ACC = {TEACHERS[0]: 60.0, TEACHERS[1]: 70.0, TEACHERS[2]: 65.0, TEACHERS[3]: 80.0}
ALONE = {0: 40.0, 1: 42.0, 2: 44.0}


def _run(role, teacher, seed, acc, agreement=None, kl=None):
    metrics = {'accuracy/top1': acc}
    if agreement is not None:
        metrics['faith/agreement'] = agreement
    if kl is not None:
        metrics['faith/kl_teacher_student'] = kl
    return RunResult(role=role, teacher=teacher, seed=seed, key='k', config='c.py',
                     work_dir='w', checkpoint='c.pth', metrics=metrics, train_seconds=1.0,
                     test_seconds=1.0, train_cpu_seconds=1.0, test_cpu_seconds=1.0,
                     iterations=10, num_params=1000)


def _gain(method, teacher, seed):
    """A made-up gain: DIST grows with the teacher's index, KD (tau 4) shrinks."""
    index = TEACHERS.index(teacher)
    return {'dist': 1.0 + index, 'kd_tau4': 3.0 - index, 'kd_tau1': 0.5}[method] + 0.5 * seed


@pytest.fixture
def runs():
    runs = TaskRuns(CLASSIFICATION, 'data', 'f' * 64, [0, 1, 2])
    for name, acc in TEACHER_ACC.items():
        runs.teachers[name] = _run('teacher', name, 0, acc)
    for seed, acc in ALONE.items():
        student = _run('student', None, seed, acc)
        student.paired = {name: dict(teacher_key='k',
                                     metrics={'faith/agreement': 0.5,
                                              'faith/kl_teacher_student': 0.9 + 0.01 * seed},
                                     cpu_seconds=1.0) for name in TEACHERS}
        runs.students[seed] = student
    for seed in ALONE:
        for teacher in TEACHERS:
            for method in METHODS:
                if (method, teacher, seed) == ('kd_tau1', TEACHERS[3], 2):
                    continue  # a run that has not finished yet
                runs.distilled.append(_run(method, teacher, seed,
                                           ALONE[seed] + _gain(method, teacher, seed),
                                           agreement=0.6 + 0.1 * seed,
                                           kl=0.2 + 0.15 * seed))
    return runs


def test_gains_are_paired_by_seed_with_sample_std(runs):
    summary = summarize(runs)
    row = summary['teachers'][1]
    assert row['name'] == TEACHERS[1] and row['accuracy'] == 70.0
    dist = row['methods']['dist']
    assert dist['gain']['values'] == pytest.approx([2.0, 2.5, 3.0])
    assert dist['gain']['mean'] == pytest.approx(2.5)
    assert dist['gain']['std'] == pytest.approx(0.5)  # sample std (ddof 1) of 2, 2.5, 3
    assert dist['accuracy']['mean'] == pytest.approx(42.0 + 2.5)
    assert dist['agreement']['mean'] == pytest.approx(70.0)
    assert dist['agreement']['std'] == pytest.approx(10.0)
    assert row['methods']['student']['agreement']['values'] == [50.0] * 3
    assert dist['kl']['values'] == pytest.approx([0.2, 0.35, 0.5])  # nats, not percent
    assert dist['kl']['std'] == pytest.approx(0.15)
    assert row['methods']['student']['kl']['mean'] == pytest.approx(0.91)
    missing = summary['teachers'][3]['methods']['kd_tau1']
    assert missing['seeds'] == [0, 1] and missing['gain']['n'] == 2
    assert summary['student']['accuracy']['mean'] == pytest.approx(42.0)


def test_table_cells(runs):
    lines = table_lines(summarize(runs), METHODS)
    acc_row = [c.strip() for c in lines[2].strip('|').split('|')]  # the first teacher
    # Gains: KD (tau 4) 3 + 0.5 * seed, KD (tau 1) 0.5 + 0.5 * seed, DIST 1 + 0.5 * seed,
    # on students alone of 40, 42, 44.
    assert acc_row == [TEACHERS[0], '0.00M', '60.0', '45.5 ± 2.5', '+3.5 ± 0.5',
                       '43.0 ± 2.5', '+1.0 ± 0.5', '43.5 ± 2.5', '+1.5 ± 0.5']
    agree_row = [c.strip() for c in lines[10].strip('|').split('|')]
    assert agree_row == [TEACHERS[1], '70.0', '50.0 ± 0.0', '70.0 ± 10.0', '70.0 ± 10.0',
                         '70.0 ± 10.0']
    assert lines[14].startswith('| teacher | teacher top-1 | KL(t‖s): student alone |')
    kl_row = [c.strip() for c in lines[17].strip('|').split('|')]  # the second teacher
    # KL: the student alone 0.90, 0.91, 0.92; distilled 0.2, 0.35, 0.5 (two decimals).
    assert kl_row == [TEACHERS[1], '70.0', '0.91 ± 0.01', '0.35 ± 0.15', '0.35 ± 0.15',
                      '0.35 ± 0.15']


def test_findings_follow_measured_teacher_accuracy(runs):
    lines = findings(summarize(runs), METHODS)
    assert lines[0] == ('Teachers by measured top-1: R18-w16 60.0, R18-w32-long 65.0, '
                        'R18-w32 70.0, R50-w32 80.0; minus the student alone (42.0): +18.0, '
                        '+23.0, +28.0, +38.0 points.')
    # DIST gains by accuracy order: 1.5, 3.5, 2.5, 4.5 (+0.5 per seed, mean over 0..2).
    dist = next(line for line in lines if line.startswith('DIST'))
    assert '+1.5 ± 0.5 with the weakest teacher (R18-w16)' in dist
    assert '+4.5 ± 0.5 with the strongest (R50-w32)' in dist
    assert 'change +3.0 points' in dist and 'is not monotone' in dist
    kd4 = next(line for line in lines if line.startswith('KD (τ=4)'))
    assert 'change -3.0 points' in kd4


def test_nothing_finished_gives_dashes(runs):
    runs.distilled.clear()
    summary = summarize(runs)
    stats = summary['teachers'][0]['methods']['dist']['gain']
    assert stats['n'] == 0 and math.isnan(stats['mean'])
    row = [c.strip() for c in table_lines(summary, METHODS)[2].strip('|').split('|')]
    assert row[3:] == ['-'] * 6
    kl_row = [c.strip() for c in table_lines(summary, METHODS)[17].strip('|').split('|')]
    assert kl_row[2:] == ['0.91 ± 0.01', '-', '-', '-']


def test_the_report_says_other_jobs_shared_the_cores_only_when_the_load_says_so():
    quiet = dict(start=[0.8, 1.0, 1.0], end=[2.0, 2.0, 2.0])
    assert shared_note(quiet, jobs=2) == ''
    for busy in (dict(start=[3.5, 1.0, 1.0], end=[2.0, 2.0, 2.0]),
                 dict(start=[0.8, 1.0, 1.0], end=[4.2, 2.0, 2.0])):
        assert 'other jobs shared the cores' in shared_note(busy, jobs=2)
    assert shared_note(dict(start=[2.5, 1.0, 1.0], end=[0.5, 1.0, 1.0]), jobs=1) != ''


def test_every_method_of_every_ladder_has_a_colour_of_its_own():
    from projects.teacher_ladder.teacher_ladder.ladder import TASKS
    from projects.teacher_ladder.teacher_ladder.plot import COLORS
    names = {'student'} | {m.name for task in TASKS.values() for m in task.methods}
    assert names <= set(COLORS)
    assert len({COLORS[n] for n in names}) == len(names)
