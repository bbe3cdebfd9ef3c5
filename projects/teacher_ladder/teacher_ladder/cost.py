# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""What a full study costs, from short runs: every config of a task (each teacher, the
student alone, every method with every teacher) trained for a few iterations on the
full data and tested. Per config: the CPU time of building the runner, plus its CPU
seconds per training iteration times the config's full schedule, plus the measured test.
The first iterations (lazy initialisation) count as ordinary ones, so short runs slightly
over-estimate.

The total is scheduled on one or two workers, teachers first, then the rest, in order
(:func:`~.report.makespan`; the study overlaps the two phases, so this is an upper bound
of the scheduling), giving the wall time on a machine of its own. CPU seconds measured on
a busy machine are slower than on an idle one (shared caches), so there the estimate is
high."""
import math
import os.path as osp
from typing import Dict, List

from mmengine.config import Config

from .data import prepare_data
from .ladder import LadderTask
from .report import makespan
from .runs import train_or_reuse


def full_iterations(config: str, train_images: int) -> int:
    """Training iterations of ``config``'s own schedule."""
    cfg = Config.fromfile(config)
    if 'max_iters' in cfg.train_cfg:
        return int(cfg.train_cfg.max_iters)
    per_epoch = math.ceil(train_images / cfg.train_dataloader.batch_size)
    return int(cfg.train_cfg.max_epochs) * per_epoch


def measure(task: LadderTask, work_dir: str, seeds: int, length: int, console,
            cpu: Dict) -> Dict:
    """Short runs of every config of ``task`` (``length`` epochs / iterations each) and
    the full study's estimated CPU and wall time with ``seeds`` seeds; ``cpu``: the CPU
    settings the runs train with (part of their keys)."""
    root = osp.join(work_dir, task.name)
    data_root = osp.join(root, 'data')
    fingerprint = prepare_data(task, data_root, task.data)
    data = task.data_options(data_root)
    short = task.schedule_options(length)
    splits = task.data.get('splits')
    train_images = (splits['train'] if splits else task.data['train_per_class'] * 6)
    rows: List[Dict] = []

    def run(name: str, config: str, extra: List[str] = (), teacher_key: str = '') -> Dict:
        """Train ``config`` briefly (or reuse the finished short run with the same key)."""
        out = train_or_reuse(name, config, osp.join(root, 'cost'), data + short + list(extra),
                             short, fingerprint, cpu, 0, teacher_key).to_json()
        iters = full_iterations(config, train_images)
        per_iteration = (out['train_cpu_seconds'] - out['build_cpu_seconds']) / out['iterations']
        row = dict(name=name, config=osp.basename(config), short_iterations=out['iterations'],
                   build_cpu_seconds=out['build_cpu_seconds'],
                   cpu_per_iteration=per_iteration, full_iterations=iters,
                   test_cpu_seconds=out['test_cpu_seconds'])
        row['full_cpu_seconds'] = (out['build_cpu_seconds'] + per_iteration * iters +
                                   out['test_cpu_seconds'])
        console.info(f'{name}: {row["cpu_per_iteration"]:.3f} CPU s / iteration x {iters} '
                     f'+ test {row["test_cpu_seconds"]:.0f} s = '
                     f'{row["full_cpu_seconds"] / 60:.1f} CPU min')
        rows.append(row)
        return out

    teachers = {}
    for teacher in task.teachers:
        teachers[teacher.name] = run(f'teacher {teacher.name}', task.config(teacher.config))
    run('student', task.config(task.student))
    for teacher in task.teachers:
        for method in task.methods:
            run(f'{method.name} {teacher.name}', task.config(method.config),
                [f'model.teacher_cfg={task.config(teacher.config)}',
                 f'model.teacher_ckpt={teachers[teacher.name]["checkpoint"]}'],
                teacher_key=teachers[teacher.name]['key'])
    # Pairing tests of the student alone cost about a distilled run's test.
    pair = [r['test_cpu_seconds'] for r in rows if r['name'].startswith('dist ')]
    teacher_cpu = [r['full_cpu_seconds'] for r in rows if r['name'].startswith('teacher ')]
    rest = []
    for _ in range(seeds):
        rest += [rows[len(task.teachers)]['full_cpu_seconds'], *pair]
    for _ in range(seeds):
        rest += [r['full_cpu_seconds'] for r in rows[len(task.teachers) + 1:]]
    return dict(task=task.name, seeds=seeds, short_length=length, runs=rows,
                cpu_seconds=sum(teacher_cpu) + sum(rest),
                teacher_cpu_seconds=sum(teacher_cpu),
                wall_estimate_seconds={str(j): makespan(teacher_cpu, j) + makespan(rest, j)
                                       for j in (1, 2)})
