# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""projects/teacher_ladder/run_study.py --tiny with its default ladders (both
classification ladders: ``cls`` and ``cls_paper``), one seed: every run trained and tested
(distilled students and the student alone next to their teacher), the printed and the
markdown tables equal to the numbers in results.json, and a second call reusing every
finished run. Several seeds (mean ± std cells): test_teacher_ladder_summary.py."""
import json
import os.path as osp
import re

import numpy as np
import pytest

from projects.teacher_ladder import run_study

SEEDS = [0]
TASKS = ['cls', 'cls_paper']
#: Each ladder's methods, in the tables' order (the wide-gap ladder also runs DIST at
#: weight 1).
METHODS = {'cls': ['kd_tau4', 'kd_tau1', 'dist_w1', 'dist'],
           'cls_paper': ['kd_tau4', 'kd_tau1', 'dist']}


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('ladder'))
    script = run_study
    capture = tmp_path_factory.mktemp('out') / 'stdout.txt'
    with open(capture, 'w', encoding='utf-8') as terminal:
        import contextlib
        with contextlib.redirect_stdout(terminal):
            paths = script.main(['--tiny', '--seeds', *map(str, SEEDS), '--work-dir',
                                 work_dir])
    with open(paths['results'], encoding='utf-8') as f:
        results = json.load(f)
    with open(paths['report'], encoding='utf-8') as f:
        report = f.read()
    return dict(script=script, work_dir=work_dir, paths=paths, results=results,
                report=report, printed=capture.read_text(encoding='utf-8'))


def _tables(text, label='top-1'):
    """The accuracy and agreement tables in ``text``: (header cells, rows of cells)."""
    tables, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(('| teacher | params |', f'| teacher | teacher {label} |')):
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith('|'):
                    break
                rows.append([c.strip() for c in row.strip('|').split('|')])
            tables.append(([c.strip() for c in line.strip('|').split('|')], rows))
    return tables


def _cell(stats, digits=1):
    """The numbers a table cell must show for ``stats`` (mean, std over seeds)."""
    return [round(stats['mean'], digits), round(stats['std'], digits)] if stats['n'] > 1 \
        else [round(stats['mean'], digits)]


def _numbers(cell):
    return [float(v) for v in re.findall(r'[-+]?\d+\.\d+', cell)]


def test_both_classification_ladders_ran(tiny):
    assert list(tiny['results']['tasks']) == TASKS


@pytest.mark.parametrize('name', TASKS)
def test_every_planned_run_ran_and_was_tested(tiny, name):
    task = tiny['results']['tasks'][name]
    assert tiny['results']['tiny'] is True
    assert [m['name'] for m in task['methods']] == METHODS[name]
    assert task['runs_done'] == task['runs_planned'] == 4 + len(SEEDS) * (
        1 + 4 * len(METHODS[name]))
    runs = task['runs']
    teachers = {r['teacher']: r for r in runs if r['role'] == 'teacher'}
    students = {r['seed']: r for r in runs if r['role'] == 'student'}
    assert len(teachers) == 4 and sorted(students) == SEEDS
    for run in runs:
        assert run['iterations'] >= 1 and run['train_seconds'] > 0
        assert osp.isfile(run['checkpoint'])
        assert 0.0 <= run['metrics']['accuracy/top1'] <= 100.0
    for run in runs:
        if run['role'] not in METHODS[name]:
            continue
        m = run['metrics']
        # The agreement metric saw the same student predictions as mmpretrain's Accuracy,
        # and the teacher the paired loop ran is the one tested alone.
        assert 100 * m['faith/acc_student'] == pytest.approx(m['accuracy/top1'], abs=1e-4)
        assert 100 * m['faith/acc_teacher'] == pytest.approx(
            teachers[run['teacher']]['metrics']['accuracy/top1'], abs=1e-4)
        assert run['num_params'] == students[run['seed']]['num_params']
    for seed, student in students.items():
        assert sorted(student['paired']) == sorted(teachers)
        for name, paired in student['paired'].items():
            m = paired['metrics']
            assert paired['teacher_key'] == teachers[name]['key']
            assert m['accuracy/top1'] == pytest.approx(student['metrics']['accuracy/top1'],
                                                       abs=1e-4)
            assert 100 * m['faith/acc_teacher'] == pytest.approx(
                teachers[name]['metrics']['accuracy/top1'], abs=1e-4)


@pytest.mark.parametrize('name', TASKS)
def test_summary_is_the_runs_arithmetic(tiny, name):
    task = tiny['results']['tasks'][name]
    runs = task['runs']
    alone = {r['seed']: r['metrics']['accuracy/top1'] for r in runs if r['role'] == 'student'}
    for row in task['summary']['teachers']:
        for method in METHODS[name]:
            done = sorted((r for r in runs
                           if r['role'] == method and r['teacher'] == row['name']),
                          key=lambda r: r['seed'])
            gains = [r['metrics']['accuracy/top1'] - alone[r['seed']] for r in done]
            stats = row['methods'][method]['gain']
            assert stats['values'] == pytest.approx(gains)
            assert stats['mean'] == pytest.approx(np.mean(gains))
            assert stats['std'] == (pytest.approx(np.std(gains, ddof=1)) if len(gains) > 1
                                    else 0.0)
            agreement = [100 * r['metrics']['faith/agreement'] for r in done]
            assert row['methods'][method]['agreement']['mean'] == pytest.approx(
                np.mean(agreement))
            kl = [r['metrics']['faith/kl_teacher_student'] for r in done]
            assert row['methods'][method]['kl']['mean'] == pytest.approx(np.mean(kl))


def check_tables(text, summary, methods, label='top-1'):
    """The markdown tables in ``text`` show exactly the numbers of ``summary``, one
    column per method of ``methods``, in that order."""
    tables = _tables(text, label)
    assert len(tables) == 3
    (acc_head, acc_rows), *per_method = tables
    assert acc_head[:3] == ['teacher', 'params', f'teacher {label}']
    assert [r[0] for r in acc_rows] == [t['name'] for t in summary['teachers']]
    for row, teacher in zip(acc_rows, summary['teachers']):
        assert _numbers(row[2]) == [round(teacher['accuracy'], 1)]
        assert len(row) == 3 + 2 * len(methods)
        for i, method in enumerate(methods):
            stats = teacher['methods'][method]
            assert _numbers(row[3 + 2 * i]) == _cell(stats['accuracy'])
            assert _numbers(row[4 + 2 * i]) == _cell(stats['gain'])
            assert row[4 + 2 * i][0] in '+-'  # gains are signed
    for (head, rows), key, prefix, digits in zip(per_method, ['agreement', 'kl'],
                                                 ['agreement', 'KL(t‖s)'], [1, 2]):
        assert head[:3] == ['teacher', f'teacher {label}', f'{prefix}: student alone']
        assert [r[0] for r in rows] == [t['name'] for t in summary['teachers']]
        for row, teacher in zip(rows, summary['teachers']):
            assert _numbers(row[1]) == [round(teacher['accuracy'], 1)]
            cells = [teacher['methods'][m][key] for m in ['student'] + methods]
            assert [_numbers(c) for c in row[2:]] == [_cell(s, digits) for s in cells]


@pytest.mark.parametrize('source', ['report', 'printed'])
def test_tables_show_the_results_json_numbers(tiny, source):
    # The second ladder's section starts with its title (printed and in the report).
    parts = tiny[source].split(tiny['results']['tasks'][TASKS[1]]['title'])
    assert len(parts) == 2
    for name, text in zip(TASKS, parts):
        check_tables(text, tiny['results']['tasks'][name]['summary'], METHODS[name])


def test_plot_and_a_second_call_reuses_every_run(tiny):
    with open(tiny['paths']['plot'], 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    paths = tiny['script'].main(['--tiny', '--seeds', *map(str, SEEDS), '--work-dir',
                                 tiny['work_dir']])
    with open(paths['results'], encoding='utf-8') as f:
        again = json.load(f)['tasks']

    def numbers(rows):  # everything but whether the teacher run was cached
        return [{k: v for k, v in row.items() if k != 'cached'} for row in rows]

    for name in TASKS:
        first = tiny['results']['tasks'][name]
        assert all(r['cached'] for r in again[name]['runs'])
        assert numbers(again[name]['summary']['teachers']) == numbers(
            first['summary']['teachers'])
