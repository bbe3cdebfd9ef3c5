# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Run a study: data, teacher (cached), every student per seed, each evaluated paired.

The pieces are the demo's (:mod:`demo`): the synthetic data and its fingerprint,
the teacher cache keyed by config + data, and :func:`~demo.stages.run_stage`,
which trains through ``tools/train.py`` and tests through ``tools/test.py`` in-process.
The teacher is evaluated alone with the same evaluators, and every student with
``mmdist.PairedTestLoop`` against that teacher.
"""
import gc
import os
import os.path as osp
import shutil
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from demo.cache import TeacherCache, teacher_key
from demo.console import Console, format_duration
from demo.data import prepare_data
from demo.paths import demo_config, load_tool
from demo.stages import StageResult, run_stage
from . import metrics  # noqa: F401  (registers the per-class metrics)
from .configs import write_config
from .table import RunRow
from .variants import Study

@dataclass
class StudySettings:
    """How to run the studies.

    Attributes:
        out_dir: output directory (absolute).
        cpu: the CPU settings the runs train with
            (:meth:`~mmdist.utils.cpu_determinism.CpuPinning.key`; part of the teacher's
            cache key).
        seeds: student seeds (the teacher is trained once, seed 0).
        tiny: the demo's tiny data and ``tiny_iters`` iterations per run.
        tiny_iters: training iterations of every run under ``tiny``.
        teacher_cache_dirs: extra folders whose ``teacher/<key>/`` entries (the demo's
            cache, e.g. ``work_dirs/demo/seg``) are reused when config, schedule and data
            fingerprint match.
    """

    out_dir: str
    cpu: Dict
    seeds: Sequence[int] = (0, )
    tiny: bool = False
    tiny_iters: int = 2
    teacher_cache_dirs: Sequence[str] = ()


@dataclass
class StudyResult:
    """A study's teacher and student rows, and where its data and teacher came from."""

    study: Study
    data_root: str
    data_fingerprint: str
    teacher_checkpoint: str
    teacher_source: str
    teacher: RunRow
    students: List[RunRow] = field(default_factory=list)


def _schedule(study: Study, settings: StudySettings) -> List[str]:
    return study.task.schedule_options(settings.tiny_iters) if settings.tiny else []


def _study_config_options(data_options: List[str]) -> List[str]:
    """``data_options`` for the configs the study writes, whose ``test_evaluator`` is a
    list: the COCO annotation file goes to its first evaluator."""
    return [option.replace('test_evaluator.ann_file=', 'test_evaluator.0.ann_file=')
            for option in data_options]


def _tiny_test_options(study: Study, role: str, settings: StudySettings) -> List[str]:
    """``--tiny`` test options of the task (``role``: ``'teacher'``, or ``'dist'`` for any
    student: all are distillers)."""
    return study.task.tiny_test_options(role) if settings.tiny else []


def _find_teacher(key: str, study_dir: str,
                  settings: StudySettings) -> Optional[StageResult]:
    for folder in list(settings.teacher_cache_dirs) + [study_dir]:
        result = TeacherCache(folder).load(key)
        if result is not None:
            return result
    return None


def _teacher(study: Study, study_dir: str, data_options: List[str], fingerprint: str,
             settings: StudySettings, console: Console, router) -> StageResult:
    """The cached teacher for this data, or train it with the demo's teacher config."""
    config = demo_config(study.teacher_config)
    schedule = _schedule(study, settings)
    key = teacher_key(config, schedule, fingerprint, settings.cpu)
    cached = _find_teacher(key, study_dir, settings)
    if cached is not None:
        console.begin_stage(f'teacher: cached {key} ({cached.work_dir})')
        return cached
    console.begin_stage(f'teacher: training {study.teacher_config} (cache key {key})')
    cache = TeacherCache(study_dir)
    work_dir = cache.work_dir(key)
    if osp.isdir(work_dir):
        shutil.rmtree(work_dir)  # an unfinished earlier attempt
    result = run_stage(task=study.task.name, role='teacher', seed=0, config=config,
                       work_dir=work_dir, options=data_options + schedule,
                       test_options=_tiny_test_options(study, 'teacher', settings),
                       console=console, router=router)
    cache.store(key, result)
    return result


def _evaluate_teacher(study: Study, study_dir: str, checkpoint: str,
                      data_options: List[str], router) -> RunRow:
    """The teacher alone under the plain test loop, with the study's evaluators."""
    config = write_config(osp.join(study_dir, 'configs', 'teacher_eval.py'),
                          study.teacher_config, study.evaluators, paired=False,
                          comment='the demo teacher, evaluated alone')
    work_dir = osp.join(study_dir, 'teacher_eval')
    os.makedirs(work_dir, exist_ok=True)
    with router.to_file(osp.join(work_dir, 'demo_stage.log')):
        start = time.monotonic()
        metrics = load_tool('test').main(
            [config, checkpoint, '--work-dir', work_dir, '--cfg-options', *data_options,
             f'visualizer.name=study_teacher_{time.time_ns()}'])
    gc.collect()
    return RunRow('teacher', 'teacher', 0, {k: float(v) for k, v in metrics.items()},
                  test_seconds=time.monotonic() - start)


def run_study(study: Study, settings: StudySettings, console: Console,
              router) -> StudyResult:
    """Data, teacher and every student x seed of ``study``."""
    study_dir = osp.join(settings.out_dir, study.name)
    spec = study.tiny_data if settings.tiny else study.data
    data = prepare_data(study.task, osp.join(study_dir, 'data'), spec)
    console.info(f'study {study.name}: data {"reused" if data.reused else "generated"} in '
                 f'{data.root} (fingerprint {data.fingerprint[:12]})')
    # The demo's teacher config keeps its own evaluator; the written configs use a list.
    data_options = study.task.data_options(data.root)
    study_options = _study_config_options(data_options)

    teacher = _teacher(study, study_dir, data_options, data.fingerprint, settings, console,
                       router)
    teacher_ckpt = osp.join(study_dir, 'teacher.pth')
    shutil.copyfile(teacher.checkpoint, teacher_ckpt)
    teacher_row = _evaluate_teacher(study, study_dir, teacher_ckpt,
                                    study_options + _tiny_test_options(study, 'teacher',
                                                                       settings), router)
    teacher_row.train_seconds, teacher_row.cached = teacher.train_seconds, teacher.cached
    headline = study.columns[0]
    console.detail(f'teacher: {headline.label} '
                   f'{teacher_row.metrics.get(headline.key, float("nan")) * headline.scale:.2f}')
    result = StudyResult(study, data.root, data.fingerprint, teacher_ckpt,
                         teacher.checkpoint, teacher_row)

    for seed in settings.seeds:
        for variant in study.variants:
            work_dir = osp.join(study_dir, variant.name, f'seed{seed}')
            # Not in work_dir: the runners dump the resolved config there under its name.
            config = write_config(osp.join(study_dir, 'configs', f'{variant.name}.py'),
                                  variant.config, study.evaluators,
                                  model=variant.model, overrides=variant.overrides,
                                  comment=f'study {study.name}: {variant.label}')
            console.begin_stage(f'study {study.name} · {variant.label}, seed {seed}')
            options = study_options + _schedule(study, settings) + [
                f'randomness.seed={seed}', f'model.teacher_ckpt={teacher_ckpt}']
            stage = run_stage(task=study.task.name, role=variant.name, seed=seed,
                              config=config, work_dir=work_dir, options=options,
                              test_options=_tiny_test_options(study, 'dist', settings),
                              console=console, router=router)
            result.students.append(
                RunRow(variant.name, variant.label, seed, stage.metrics, stage.train_seconds,
                       stage.test_seconds))
            value = stage.metrics.get(headline.key, float('nan')) * headline.scale
            console.detail(f'{variant.label}: {headline.label} {value:.2f}'
                           f' (trained in {format_duration(stage.train_seconds)}, tested in '
                           f'{format_duration(stage.test_seconds)})')
    return result
