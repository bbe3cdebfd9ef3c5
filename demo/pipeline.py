# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""``make demo`` end to end: data -> teacher (cached) -> three students -> report.

For each task (detection, segmentation):

1. generate the synthetic dataset (train + held-out split) under ``<out>/<task>/data``;
2. train the teacher config, or reuse the cached teacher with the same config, data and
   schedule (:mod:`demo.cache`); copy it to ``<out>/<task>/teacher.pth``;
3. for each seed, train the student config three ways — alone, with KD, with DIST —
   with the same schedule and seed, each evaluated on the held-out split;

then print the table and write ``report.md``, ``results.json`` and ``demo.png``.
Every run goes through ``tools/train.py`` and ``tools/test.py`` with a config from
``configs/demo/`` (:mod:`demo.stages`).
"""
import json
import os
import os.path as osp
import shutil
import time
import traceback
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, TextIO

from mmdist.utils.cpu_determinism import CpuPinning, cpu_model, pinned_torch
from .cache import TeacherCache, teacher_key
from .console import Console, format_duration, routed_output
from .data import prepare_data
from .paths import demo_config
from .plot import plot_results
from .report import build_rows, findings, table_lines, write_report
from .stages import StageResult, run_stage
from .tasks import DISTILLED, ROLE_NAMES, DemoTask, select_tasks


@dataclass
class DemoOptions:
    """What to run (the options of ``python -m demo``).

    Attributes:
        task: ``'det'``, ``'seg'`` or ``'all'``.
        out_dir: output directory (data, work dirs, report, plot).
        tiny: a few images and iterations (a smoke test; numbers are meaningless).
        seeds: student seeds; each trains the three students (the teacher once).
        retrain_teacher: ignore the teacher cache.
        verbose: also show the runners' own log output.
        threads: torch intra-op threads while the demo runs (see :func:`run_demo`).
        pin_cpu: run with the CPU code paths pinned (:mod:`mmdist.utils.cpu_determinism`):
            :func:`run_demo` sets the run-time part (oneDNN off, ...); the environment part
            must be set before torch loads (``python -m demo`` does).
        command: the command line, quoted in the report.
    """

    task: str = 'all'
    out_dir: str = 'work_dirs/demo'
    tiny: bool = False
    seeds: Sequence[int] = (0, )
    retrain_teacher: bool = False
    verbose: bool = False
    threads: int = 1
    pin_cpu: bool = True
    command: str = 'python -m demo'


@dataclass
class DemoRun:
    """What a demo run produced."""

    results: Dict[str, List[StageResult]] = field(default_factory=dict)
    report: str = ''
    plot: str = ''
    results_json: str = ''
    wall_seconds: float = 0.0


class StageFailed(RuntimeError):
    """A stage raised; the message names its log file."""


def _student_options(role: str, options: Sequence[str], seed: int,
                     teacher_ckpt: str) -> List[str]:
    """A student stage's ``--cfg-options``: seed, and the teacher for KD / DIST."""
    extra = [f'randomness.seed={seed}']
    if role in DISTILLED:
        extra.append(f'model.teacher_ckpt={teacher_ckpt}')
    return list(options) + extra


def _headline(task: DemoTask, result: StageResult) -> str:
    value = result.metrics.get(task.headline.key)
    if value is None:
        return f'{task.headline.label} n/a (no detections / metric)'
    return f'{task.headline.label} {value * task.headline.scale:.1f}'


def _run_stage(console: Console, title: str, work_dir: str, **kwargs) -> StageResult:
    """:func:`run_stage`; on failure show the end of its log, raise :class:`StageFailed`."""
    try:
        return run_stage(work_dir=work_dir, console=console, **kwargs)
    except Exception as err:  # noqa: BLE001 (re-raised with the log's location)
        log_file = osp.join(work_dir, 'demo_stage.log')
        console.print(f'\n{title} FAILED: {type(err).__name__}: {err}')
        if osp.isfile(log_file):
            with open(log_file, encoding='utf-8', errors='replace') as f:
                tail = f.readlines()[-25:]
            console.print(f'--- last lines of {log_file} ---')
            console.print(''.join(tail).rstrip())
        console.print(''.join(traceback.format_exception(type(err), err, err.__traceback__))
                      .rstrip())
        raise StageFailed(f'{title} failed; see {log_file}') from err


def run_task(task: DemoTask, options: DemoOptions, console: Console, router,
             out_dir: str, pinning: CpuPinning) -> List[StageResult]:
    """Data, teacher and the three students of one task; returns their results."""
    task_dir = osp.join(out_dir, task.name)
    spec = task.tiny_data if options.tiny else task.data
    start = time.monotonic()
    data = prepare_data(task, osp.join(task_dir, 'data'), spec)
    sizes = ', '.join(f'{n} {split}' for split, n in sorted(data.splits.items()))
    console.info(f'{task.name}: synthetic data {"reused" if data.reused else "generated"} '
                 f'({sizes} images, {spec.image_size[0]}x{spec.image_size[1]} px, '
                 f'{time.monotonic() - start:.0f} s) in {data.root}')

    base_options = task.data_options(data.root)
    schedule = {}
    if options.tiny:
        schedule = {role: task.schedule_options(task.tiny_schedule[kind])
                    for role, kind in (('teacher', 'teacher'), ('student', 'student'),
                                       ('kd', 'student'), ('dist', 'student'))}
    results = []

    # Teacher: cached by config + data + schedule + CPU settings.
    config = demo_config(task.configs['teacher'])
    cache = TeacherCache(task_dir)
    key = teacher_key(config, schedule.get('teacher', []), data.fingerprint, pinning.key())
    teacher = None if options.retrain_teacher else cache.load(key)
    title = f'{task.name} · teacher ({osp.basename(config)})'
    if teacher is not None:
        console.begin_stage(f'{title}: cached {key}, trained in '
                            f'{format_duration(teacher.train_seconds)} on an earlier run')
    else:
        console.begin_stage(f'{title}: training (cache key {key})')
        work_dir = cache.work_dir(key)
        if osp.isdir(work_dir):
            shutil.rmtree(work_dir)  # an unfinished earlier attempt
        teacher = _run_stage(
            console, title, work_dir, task=task.name, role='teacher', seed=0, config=config,
            options=base_options + schedule.get('teacher', []),
            test_options=task.tiny_test_options('teacher') if options.tiny else [],
            router=router)
        cache.store(key, teacher)
    console.detail(f'teacher: {_headline(task, teacher)}  ({teacher.num_params / 1e6:.2f}M '
                   f'parameters, {teacher.iterations} iterations)')
    results.append(teacher)
    teacher_ckpt = osp.join(task_dir, 'teacher.pth')
    shutil.copyfile(teacher.checkpoint, teacher_ckpt)

    # Students: alone, + KD, + DIST; same schedule and seed.
    for seed in options.seeds:
        for role in ('student', 'kd', 'dist'):
            config = demo_config(task.configs[role])
            title = f'{task.name} · {ROLE_NAMES[role]}, seed {seed} ({osp.basename(config)})'
            console.begin_stage(f'{title}: training')
            stage_options = _student_options(
                role, base_options + schedule.get(role, []), seed, teacher_ckpt)
            result = _run_stage(
                console, title, osp.join(task_dir, role, f'seed{seed}'), task=task.name,
                role=role, seed=seed, config=config, options=stage_options,
                test_options=task.tiny_test_options(role) if options.tiny else [],
                router=router)
            console.detail(f'{ROLE_NAMES[role]}: {_headline(task, result)}  (trained in '
                           f'{format_duration(result.train_seconds)}, tested in '
                           f'{format_duration(result.test_seconds)})')
            results.append(result)
    return results


def _data_summary(task: DemoTask, options: DemoOptions) -> str:
    spec = task.tiny_data if options.tiny else task.data
    return (f'Data: {spec.splits.get("train", 0)} training and {spec.splits.get("val", 0)} '
            f'held-out images of {spec.image_size[0]}x{spec.image_size[1]} px; '
            f'{len(task.classes)} shape classes ({", ".join(task.classes)}), '
            f'{spec.object_size[0]}-{spec.object_size[1]} px, up to {spec.max_objects} per '
            f'image with occlusion, stripe texture {spec.texture:g}, up to '
            f'{spec.distractors} unannotated distractor strokes, '
            + ('random colours.' if spec.color_noise is None else
               f'class colours with noise σ={spec.color_noise:g}.'))


def run_demo(options: DemoOptions, stream: Optional[TextIO] = None) -> DemoRun:
    """Run the demo; print progress to ``stream`` (default: ``sys.stdout``).

    Torch runs with ``options.threads`` intra-op threads (default 1) and, with
    ``options.pin_cpu``, the pinned settings (:func:`~mmdist.utils.cpu_determinism.
    pinned_torch`); both are restored afterwards. On a machine whose cores are also busy
    with other work, OpenMP threads waiting for each other made a training step of the
    detection student up to 8x slower (measured: 0.7 s with 2 threads, 0.09 s with 1).
    One thread also keeps the numbers independent of the core count; ``threads=2`` may
    be faster on an idle machine.
    """
    tasks = select_tasks(options.task)
    out_dir = osp.abspath(options.out_dir)
    os.makedirs(out_dir, exist_ok=True)
    seeds = list(dict.fromkeys(int(s) for s in options.seeds))
    if not seeds:
        raise ValueError('need at least one seed')
    options.seeds = seeds
    with pinned_torch(int(options.threads), options.pin_cpu) as pinning:
        return _run_all(options, tasks, out_dir, seeds, stream, pinning)


def _run_all(options: DemoOptions, tasks: Sequence[DemoTask], out_dir: str,
             seeds: List[int], stream: Optional[TextIO], pinning: CpuPinning) -> DemoRun:
    run = DemoRun()
    with routed_output(echo=options.verbose, terminal=stream) as router, \
            router.to_file(osp.join(out_dir, 'demo.log')):
        console = Console(router.terminal, num_stages=len(tasks) * (1 + 3 * len(seeds)))
        console.info(f'mmdist demo: teacher, student, student + KD, student + DIST on '
                     f'synthetic data ({", ".join(t.name for t in tasks)}; '
                     f'{"--tiny smoke test" if options.tiny else "full"}; seeds '
                     f'{" ".join(map(str, seeds))}); output in {out_dir}')
        console.info(f'{cpu_model()}: {pinning.describe()}')
        console.info('each stage logs to <work dir>/demo_stage.log, the rest to demo.log'
                     + ('' if options.verbose else ' (--verbose shows them here)'))
        for task in tasks:
            run.results[task.name] = run_task(task, options, console, router, out_dir,
                                              pinning)
            console.print()
            for line in table_lines(task, build_rows(task, run.results[task.name])):
                console.print('  ' + line)
            console.print()
        run.wall_seconds = console.elapsed

        run.plot = plot_results(osp.join(out_dir, 'demo.png'), tasks, run.results)
        run.report = osp.join(out_dir, 'report.md')
        write_report(run.report, tasks, run.results, run.wall_seconds, options.command,
                     run.plot, options.tiny,
                     {task.name: _data_summary(task, options) for task in tasks},
                     pinning.describe())
        run.results_json = osp.join(out_dir, 'results.json')
        with open(run.results_json, 'w', encoding='utf-8') as f:
            json.dump(dict(wall_seconds=run.wall_seconds, tiny=options.tiny, seeds=seeds,
                           cpu=dict(pinning.key(), model=cpu_model()),
                           results={name: [r.to_json() for r in rs]
                                    for name, rs in run.results.items()}), f, indent=1)

        console.print('=' * 78)
        console.print(f'Done in {format_duration(run.wall_seconds)} (wall time).')
        for task in tasks:
            console.print(f'\n{task.title}')
            for line in table_lines(task, build_rows(task, run.results[task.name])):
                console.print('  ' + line)
            for line in findings(task, run.results[task.name]):
                console.print(f'  - {line}')
        console.print(f'\nreport:  {run.report}\nplot:    {run.plot}\n'
                      f'results: {run.results_json}')
    return run
