# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""projects/faithfulness_study/run.py --tiny: studies A and B end to end (train
through tools/train.py, paired test through tools/test.py), 2 iterations per run. Study C
is study B with other class weights (same code path)."""
import json
import math
import os.path as osp

import pytest

from projects.faithfulness_study import run as study_script

LABELS = {
    'A': ['teacher', 'DIST', 'DIST + CutMix'],
    'B': ['teacher', 'KD', 'DIST', 'DIST + KL (0.5)', 'DIST class-aware (0.05)',
          'DIST + KL + class-aware'],
}


@pytest.fixture(scope='module')
def tiny_study(tmp_path_factory):
    out_dir = str(tmp_path_factory.mktemp('study'))
    paths = study_script.main(['--tiny', '--study', 'A', 'B', '--out-dir', out_dir,
                               '--teacher-cache'])
    with open(paths['results'], encoding='utf-8') as f:
        results = json.load(f)
    with open(paths['report'], encoding='utf-8') as f:
        report = f.read()
    return dict(out_dir=out_dir, results=results, report=report)


def _tables(report):
    """Markdown tables of the report: header cells and rows of cells."""
    tables, lines = [], report.splitlines()
    for i, line in enumerate(lines):
        if line.startswith('| model |'):
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith('|'):
                    break
                rows.append([c.strip() for c in row.strip('|').split('|')])
            tables.append(([c.strip() for c in line.strip('|').split('|')], rows))
    return tables


def test_every_run_was_trained_and_evaluated_paired(tiny_study):
    studies = tiny_study['results']['studies']
    assert set(studies) == {'A', 'B'} and tiny_study['results']['tiny'] is True
    for name, study in studies.items():
        rows = [study['teacher']] + study['students']
        assert [r['label'] for r in rows] == LABELS[name]
        assert all(r['seed'] == 0 for r in rows)
        for row in study['students']:
            m = row['metrics']
            assert row['train_seconds'] > 0
            # Paired evaluation happened: teacher-relative keys exist and are consistent.
            assert m['faith/ece_diff'] == pytest.approx(
                m['faith/ece_student'] - m['faith/ece_teacher'], abs=1e-12)
            defined = [m[f'faith/agreement.{k}'] for k in range(7)
                       if not math.isnan(m[f'faith/agreement.{k}'])]
            assert m['faith/agreement_class_macro'] == pytest.approx(
                sum(defined) / len(defined), abs=1e-12)
            # The paired loop's teacher is the teacher evaluated alone.
            assert m['faith/ece_teacher'] == pytest.approx(
                study['teacher']['metrics']['faith/ece_student'], abs=1e-6)
            assert m['faith/acc_teacher'] == pytest.approx(
                study['teacher']['metrics']['faith/acc_student'], abs=1e-6)
        assert 'faith/agreement' not in study['teacher']['metrics']  # plain loop


def test_tables_have_the_study_columns_and_finite_values(tiny_study):
    report, studies = tiny_study['report'], tiny_study['results']['studies']
    assert '--tiny' in report and 'torch' in report
    tables = _tables(report)
    assert len(tables) == 2
    for (header, rows), name in zip(tables, ('A', 'B')):
        study = studies[name]
        columns = study['columns']
        assert header == ['model', 'seed'] + [c['label'] for c in columns]
        assert [r[0] for r in rows] == LABELS[name]
        for cells, run in zip(rows, [study['teacher']] + study['students']):
            for cell, column in zip(cells[2:], columns):
                per_class = column['key'].rsplit('.', 1)[-1].isdigit()
                if cell == '—':  # only the teacher lacks teacher-relative metrics
                    assert run['label'] == 'teacher' and column['key'] not in run['metrics']
                    continue
                value = run['metrics'][column['key']] * column['scale']
                if per_class and math.isnan(value):  # a class absent from 4 tiny images
                    assert cell == 'nan'
                    continue
                assert math.isfinite(float(cell)) and 0 - 1e-9 <= abs(value) <= 100 + 1e-9
                assert float(cell) == pytest.approx(value, abs=0.005 + 1e-9)
        # The headline columns are always defined.
        for cells in rows:
            assert math.isfinite(float(cells[2]))  # mIoU
    assert 'ring' in tables[1][0][3] and 'diamond' in tables[1][0][4]


def test_configs_of_the_runs_are_written(tiny_study):
    config = osp.join(tiny_study['out_dir'], 'B', 'configs', 'dist_kl_ca.py')
    text = open(config, encoding='utf-8').read()
    assert "'kl_weight': 0.5" in text and "'intra_class_threshold': 0.05" in text
    assert 'mmdist.PairedTestLoop' in text
    cutmix = open(osp.join(tiny_study['out_dir'], 'A', 'configs', 'dist_cutmix.py'),
                  encoding='utf-8').read()
    assert 'mmdist.SegBatchCutMix' in cutmix


def test_detection_study_runs_paired_with_per_class_fidelity(tmp_path):
    """Study E (detection) end to end in --tiny mode: RetinaNet students evaluated with
    CocoMetric (per-class AP) and DetFaithfulnessMetric against their teacher."""
    paths = study_script.main(['--tiny', '--study', 'E', '--out-dir', str(tmp_path),
                               '--teacher-cache'])
    with open(paths['results'], encoding='utf-8') as f:
        study = json.load(f)['studies']['E']
    assert [r['label'] for r in [study['teacher']] + study['students']] == [
        'teacher', 'KD', 'DIST', 'DIST + KL (0.5)', 'DIST class-aware (0.05)',
        'DIST + KL + class-aware']
    teacher = study['teacher']['metrics']
    assert 'faith/fidelity_recall' not in teacher  # plain loop: no teacher to compare
    for row in study['students']:
        m = row['metrics']
        assert 0 <= m['coco/bbox_mAP'] <= 1
        assert all(f'faith/fidelity_recall.{k}' in m for k in range(6))
        # The paired loop's teacher is the teacher evaluated alone.
        alone, paired = teacher['faith/dece_student'], m['faith/dece_teacher']
        assert (math.isnan(alone) and math.isnan(paired)) or paired == pytest.approx(alone)
    header = _tables(open(paths['report'], encoding='utf-8').read())[0][0]
    assert header == ['model', 'seed'] + [c['label'] for c in study['columns']]
    assert 'AP triangle' in header and 'fid. recall cross' in header
