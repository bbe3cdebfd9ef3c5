# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""`make demo` in --tiny mode: the same pipeline (python -m demo -> tools/train.py and
tools/test.py on configs/demo/*.py), a few images and iterations, into a tmp dir."""
import io
import json
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

import demo.__main__ as demo_cli
from demo import ROLES, DemoOptions, run_demo
from demo.cache import teacher_key
from demo.console import format_duration
from demo.paths import demo_config
from mmdist.models.utils.teacher import RANDOM_TEACHER
from mmdist.registry import MODELS
from mmdist.utils.cpu_determinism import PINNED_ENV

ROW_NAMES = ('teacher', 'student', 'student + KD', 'student + DIST')


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    """One --tiny run of both tasks (the test's main cost), then a second one."""
    out_dir = str(tmp_path_factory.mktemp('demo'))
    first_out, second_out = io.StringIO(), io.StringIO()
    args = ['--tiny', '--out-dir', out_dir]
    first = run_demo(DemoOptions(**_options(args)), stream=first_out)
    # The second run (detection only) rewrites report.md: keep the first one's.
    first_report = open(first.report, encoding='utf-8').read()
    second = run_demo(DemoOptions(**_options(args + ['--task', 'det'])),
                      stream=second_out)
    return dict(out_dir=out_dir, first=first, second=second, first_out=first_out.getvalue(),
                second_out=second_out.getvalue(), first_report=first_report)


def _options(argv):
    """``python -m demo``'s own argument parsing, as DemoOptions keywords."""
    args = demo_cli.parse_args(argv)
    return dict(task=args.task, out_dir=args.out_dir, tiny=args.tiny, seeds=args.seeds,
                retrain_teacher=args.retrain_teacher, verbose=args.verbose,
                threads=args.threads, pin_cpu=args.pin_cpu,
                command='python -m demo ' + ' '.join(argv))


def test_every_stage_ran_and_was_evaluated(tiny_run):
    run = tiny_run['first']
    assert set(run.results) == {'det', 'seg'}
    for task, results in run.results.items():
        assert [r.role for r in results] == list(ROLES)
        for result in results:
            assert osp.isfile(result.checkpoint), result
            assert osp.isfile(result.log_file)
            assert result.iterations > 0 and result.losses, result
            assert not result.cached
        headline = 'coco/bbox_mAP' if task == 'det' else 'mIoU'
        for result in results:
            assert math.isfinite(result.metrics[headline]), result.metrics
    # The distilled runs really distilled: their logs carry the distillation terms.
    for results in run.results.values():
        for result in results:
            dist_keys = [k for k in result.losses[-1] if k.startswith('loss_dist')]
            assert bool(dist_keys) == (result.role in ('kd', 'dist')), (result.role,
                                                                         result.losses[-1])


def test_report_plot_and_results_are_written(tiny_run):
    run = tiny_run['first']
    assert run.report == osp.join(tiny_run['out_dir'], 'report.md')
    assert osp.getsize(run.plot) > 10_000
    with open(run.plot, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    report = tiny_run['first_report']
    assert 'measured wall time' in report and '--tiny' in report
    for task, metric in (('det', 'box AP'), ('seg', 'mIoU')):
        header = next(line for line in report.splitlines()
                      if line.startswith('| model') and metric in line)
        columns = [c.strip() for c in header.strip('|').split('|')]
        start = report.splitlines().index(header)
        rows = report.splitlines()[start + 2:start + 6]
        assert [r.split('|')[1].strip() for r in rows] == list(ROW_NAMES), rows
        for row in rows:
            cells = [c.strip() for c in row.strip('|').split('|')]
            value = cells[columns.index(metric)]
            assert math.isfinite(float(value)), (task, row)
    results = json.load(open(run.results_json, encoding='utf-8'))
    assert results['tiny'] is True and results['wall_seconds'] > 0
    # The CPU settings the stages ran with: pinned at run time (oneDNN off, ...); this
    # process loaded torch without the pinned environment, which the line says.
    cpu = results['cpu']
    assert cpu['mkldnn'] is False and cpu['deterministic'] is True and cpu['threads'] == 1
    assert cpu['pinned'] == all(cpu['env'][k] == v for k, v in PINNED_ENV.items())
    line = next(line for line in report.splitlines() if line.startswith('- CPU '))
    assert line[2:] in tiny_run['first_out']  # the header says the same
    assert ('CPU pinned: ATEN_CPU_CAPABILITY=avx2' in line) == cpu['pinned']
    assert {r['role'] for r in results['results']['det']} == set(ROLES)


def test_progress_is_shown_and_runner_logs_are_not(tiny_run):
    out = tiny_run['first_out']
    for k in range(1, 9):
        assert f'stage {k}/8' in out
    assert 'iter ' in out and 'testing ' in out
    for name in ROW_NAMES:
        assert name in out
    assert 'Done in' in out
    # The runners' own output (config dumps, per-iteration logs) goes to the stage logs.
    assert 'mmengine - INFO' not in out
    log = open(tiny_run['first'].results['det'][1].log_file, encoding='utf-8').read()
    assert 'mmengine - INFO' in log


def test_second_run_reuses_data_and_teacher(tiny_run):
    first, second = tiny_run['first'], tiny_run['second']
    assert set(second.results) == {'det'}
    teacher = second.results['det'][0]
    assert teacher.cached
    assert teacher.checkpoint == first.results['det'][0].checkpoint
    assert teacher.metrics == first.results['det'][0].metrics
    assert 'synthetic data reused' in tiny_run['second_out']
    assert 'cached' in tiny_run['second_out']
    # Same seed, same schedule, same data: the student alone is reproduced exactly.
    assert second.results['det'][1].metrics == first.results['det'][1].metrics
    # The KD / DIST configs' default teacher_ckpt location holds the teacher.
    assert osp.isfile(osp.join(tiny_run['out_dir'], 'det', 'teacher.pth'))


@pytest.mark.parametrize('task', ['det', 'seg'])
def test_distilled_student_starts_from_the_baseline_initialisation(task):
    """Building the teacher does not advance the RNG: same seed, same initial student."""
    scope = 'mmdet' if task == 'det' else 'mmseg'
    student_cfg = Config.fromfile(demo_config(f'{task}_student.py'))
    dist_cfg = Config.fromfile(demo_config(f'{task}_student_dist.py'))
    dist_cfg.model.teacher_ckpt = RANDOM_TEACHER  # the teacher's weights do not matter here
    with DefaultScope.overwrite_default_scope(scope):
        torch.manual_seed(3)
        alone = MODELS.build(student_cfg.model)
        alone.init_weights()
        torch.manual_seed(3)
        distiller = MODELS.build(dist_cfg.model)
        distiller.init_weights()
    reference = alone.state_dict()
    state = distiller.student.state_dict()
    assert state.keys() == reference.keys()
    for key, value in reference.items():
        assert torch.equal(state[key], value), key


def test_teacher_cache_key_includes_the_cpu_settings():
    config = demo_config('det_teacher.py')
    keys = {teacher_key(config, [], 'data', cpu) for cpu in (
        dict(pinned=True, threads=1), dict(pinned=False, threads=1),
        dict(pinned=True, threads=2))}
    assert len(keys) == 3
    assert teacher_key(config, [], 'data', dict(pinned=True, threads=1)) in keys


def test_format_duration():
    assert format_duration(83.4) == '1:23'
    assert format_duration(4000) == '1:06:40'
