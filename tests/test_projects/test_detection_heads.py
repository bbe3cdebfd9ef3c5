# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""projects/detection_heads/run.py --tiny: the RTMDet table end to end (teacher, student
alone, student + DIST through tools/train.py and tools/test.py), its report and JSON, and
that a finished run is kept, not trained again."""
import json
import math

import pytest

from projects.detection_heads import run as measurement


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    out_dir = str(tmp_path_factory.mktemp('detection_heads'))
    argv = ['--tiny', '--tables', 'rtmdet', '--seeds', '0', '--out-dir', out_dir,
            '--teacher-cache']
    paths = measurement.main(argv)
    with open(paths['results'], encoding='utf-8') as f:
        results = json.load(f)
    with open(paths['report'], encoding='utf-8') as f:
        report = f.read()
    return dict(argv=argv, results=results, report=report)


def test_every_run_was_trained_and_tested(tiny):
    results = tiny['results']
    assert results['tiny'] is True and results['seeds'] == [0]
    assert set(results['teachers']) == {'rtmdet'} and set(results['students']) == {
        'rtmdet', 'rtmdet_dist'}
    teacher = results['teachers']['rtmdet']
    assert teacher['role'] == 'teacher' and teacher['iterations'] > 0
    for name, runs in results['students'].items():
        run = runs['0']
        assert run['seed'] == 0 and run['train_seconds'] > 0 and run['iterations'] > 0
        assert 0 <= run['metrics']['coco/bbox_mAP'] <= 1
        distilled = any('loss_dist_cls' in entry for entry in run['losses'])
        assert distilled == (name == 'rtmdet_dist')


def test_report_table_is_the_json(tiny):
    lines = [line for line in tiny['report'].splitlines()
             if line.startswith('| ') and '---' not in line]
    header, *rows = [[c.strip() for c in line.strip('|').split('|')] for line in lines]
    assert header[:3] == ['model', 'params', 'box AP']
    assert [row[0] for row in rows] == ['teacher (rtmdet, seed 0)', 'RTMDet student alone',
                                        'RTMDet <- RTMDet, DIST (direct)']
    students = tiny['results']['students']
    for row, name in zip(rows[1:], ('rtmdet', 'rtmdet_dist')):
        ap = students[name]['0']['metrics']['coco/bbox_mAP'] * 100
        assert float(row[2]) == pytest.approx(ap, abs=0.05)
    delta = (students['rtmdet_dist']['0']['metrics']['coco/bbox_mAP'] -
             students['rtmdet']['0']['metrics']['coco/bbox_mAP']) * 100
    assert rows[2][6].startswith(f'{delta:+.1f}') and not math.isnan(delta)


def test_finished_runs_are_kept(tiny, monkeypatch):
    """A second invocation trains nothing: the teacher comes from its cache and each
    student run from its result.json (same config, options, teacher and data)."""
    import demo.stages
    trained = []
    monkeypatch.setattr(demo.stages, 'run_stage', lambda **kw: trained.append(kw))
    paths = measurement.main(tiny['argv'])
    assert not trained
    with open(paths['results'], encoding='utf-8') as f:
        again = json.load(f)
    for name, runs in tiny['results']['students'].items():
        assert again['students'][name]['0']['metrics'] == runs['0']['metrics']


def test_every_table_starts_with_its_baseline_and_names_its_teachers():
    from demo.paths import demo_config
    from projects.detection_heads.experiments import RUNS, TABLES, TEACHERS
    for table in TABLES.values():
        runs = [RUNS[name] for name in table.runs]
        assert runs[0].teacher is None, table.name  # the student alone, the Δ reference
        assert {r.teacher for r in runs[1:]} <= set(table.teachers), table.name
        assert set(table.teachers) <= set(TEACHERS), table.name
        for run in runs:
            demo_config(run.config)  # raises if the config does not exist
    # The DETR-family tables: DIST and KD on the same matched queries; box terms apart.
    assert TABLES['detr'].runs == ('dino', 'dino_dist', 'dino_kd')
    assert TABLES['detr_box'].runs == ('dino', 'dino_dist', 'dino_dist_box')
