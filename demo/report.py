# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""The results table (terminal and markdown) and the markdown report.

Numbers are always the measured ones: means over the seeds that were run (± the
sample standard deviation when there are several), and deltas against the student
trained alone. Nothing here decides what "should" have happened.
"""
import datetime
import math
import os
import os.path as osp
import platform
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import torch

from mmdist.utils.cpu_determinism import cpu_model
from .console import format_duration
from .stages import StageResult
from .tasks import DISTILLED, ROLE_NAMES, ROLES, DemoTask


@dataclass
class Row:
    """One line of a task's table: a role aggregated over seeds."""

    role: str
    name: str
    seeds: List[int]
    values: Dict[str, List[float]]  # metric key -> per-seed display values
    num_params: int
    iterations: int
    train_seconds: float
    cached: bool

    def mean(self, key: str) -> float:
        values = [v for v in self.values.get(key, []) if not math.isnan(v)]
        return sum(values) / len(values) if values else math.nan

    def std(self, key: str) -> float:
        values = [v for v in self.values.get(key, []) if not math.isnan(v)]
        if len(values) < 2:
            return math.nan
        mean = sum(values) / len(values)
        return math.sqrt(sum((v - mean)**2 for v in values) / (len(values) - 1))


def build_rows(task: DemoTask, results: Sequence[StageResult]) -> List[Row]:
    """Aggregate a task's stage results into one row per role (table order)."""
    rows = []
    for role in ROLES:
        runs = sorted((r for r in results if r.role == role), key=lambda r: r.seed)
        if not runs:
            continue
        values = {
            m.key: [r.metrics.get(m.key, math.nan) * m.scale for r in runs]
            for m in task.metrics
        }
        rows.append(
            Row(role=role, name=ROLE_NAMES[role], seeds=[r.seed for r in runs], values=values,
                num_params=runs[0].num_params, iterations=runs[0].iterations,
                train_seconds=sum(r.train_seconds for r in runs) / len(runs),
                cached=all(r.cached for r in runs)))
    return rows


def paired_delta(task: DemoTask, results: Sequence[StageResult], role: str,
                 baseline: str = 'student') -> Optional[List[float]]:
    """Per-seed ``headline(role) - headline(baseline)`` for the seeds both have."""
    key, scale = task.headline.key, task.headline.scale
    base = {r.seed: r.metrics.get(key, math.nan) for r in results if r.role == baseline}
    other = {r.seed: r.metrics.get(key, math.nan) for r in results if r.role == role}
    seeds = sorted(set(base) & set(other))
    if not seeds:
        return None
    return [(other[s] - base[s]) * scale for s in seeds]


def _fmt(value: float, std: float = math.nan) -> str:
    if math.isnan(value):
        return 'n/a'
    return f'{value:.1f}' if math.isnan(std) else f'{value:.1f} ± {std:.1f}'


def _fmt_delta(value: float) -> str:
    return '' if math.isnan(value) else f'{value:+.1f}'


def _params(n: int) -> str:
    return f'{n / 1e6:.2f}M'


def table_lines(task: DemoTask, rows: Sequence[Row], markdown: bool = False) -> List[str]:
    """The results table of one task as text lines (aligned, or a markdown table)."""
    headline = task.headline.key
    student = next((r for r in rows if r.role == 'student'), None)
    header = ['model', 'params', 'iters'] + [m.label for m in task.metrics] + [
        f'Δ {task.headline.label}', 'train time'
    ]
    body = []
    for row in rows:
        delta = math.nan
        if student is not None and row.role in DISTILLED:
            delta = row.mean(headline) - student.mean(headline)
        time_text = format_duration(row.train_seconds) + (' (cached)' if row.cached else '')
        body.append([row.name, _params(row.num_params), str(row.iterations)] +
                    [_fmt(row.mean(m.key), row.std(m.key)) for m in task.metrics] +
                    [_fmt_delta(delta), time_text])
    if markdown:
        lines = ['| ' + ' | '.join(header) + ' |',
                 '|' + '|'.join(' --- ' for _ in header) + '|']
        lines += ['| ' + ' | '.join(cells) + ' |' for cells in body]
        return lines
    widths = [max(len(line[i]) for line in [header] + body) for i in range(len(header))]
    fmt = '  '.join('{:<%d}' % w if i == 0 else '{:>%d}' % w for i, w in enumerate(widths))
    lines = [fmt.format(*header), '  '.join('-' * w for w in widths)]
    lines += [fmt.format(*cells) for cells in body]
    return lines


def findings(task: DemoTask, results: Sequence[StageResult]) -> List[str]:
    """Plain statements of the measured differences (no judgement beyond the numbers)."""
    label = task.headline.label
    rows = {row.role: row for row in build_rows(task, results)}
    lines = []
    if 'teacher' in rows and 'student' in rows:
        gap = rows['teacher'].mean(task.headline.key) - rows['student'].mean(task.headline.key)
        lines.append(f'Teacher − student: {gap:+.1f} {label} (the gap distillation can close).')
    for role in DISTILLED:
        deltas = paired_delta(task, results, role)
        if not deltas:
            continue
        mean = sum(deltas) / len(deltas)
        per_seed = ', '.join(f'{d:+.1f}' for d in deltas)
        wins = sum(d > 0 for d in deltas)
        lines.append(f'{ROLE_NAMES[role]} − student: {mean:+.1f} {label} on average over '
                     f'{len(deltas)} seed(s) (per seed: {per_seed}; better in {wins} of '
                     f'{len(deltas)}).')
    dist_vs_kd = paired_delta(task, results, 'dist', 'kd')
    if dist_vs_kd:
        mean = sum(dist_vs_kd) / len(dist_vs_kd)
        lines.append(f'student + DIST − student + KD: {mean:+.1f} {label} on average '
                     f'(per seed: {", ".join(f"{d:+.1f}" for d in dist_vs_kd)}).')
    if len({r.seed for r in results if r.role == 'student'}) < 2:
        lines.append('One seed only: this is not a significance test. Seed-to-seed spread '
                     'of a single run can be as large as these differences; '
                     '`--seeds 0 1 2` measures it.')
    return lines


def write_report(path: str, tasks: Sequence[DemoTask], results: Dict[str, List[StageResult]],
                 wall_seconds: float, command: str, plot_file: Optional[str],
                 tiny: bool, data_summaries: Dict[str, str], cpu: str) -> None:
    """Write the markdown report of a demo run; ``cpu``: the CPU settings' line
    (:meth:`~mmdist.utils.cpu_determinism.CpuPinning.describe`)."""
    now = datetime.datetime.now().astimezone()
    lines = [
        '# mmdist demo report', '',
        f'- date: {now:%Y-%m-%d %H:%M %Z}',
        f'- command: `{command}`',
        '- mode: ' + ('--tiny (smoke test: a few iterations, numbers meaningless)'
                      if tiny else 'full'),
        f'- machine: {platform.machine()}, {_cpu_count()} CPU cores, torch {torch.__version__}'
        f' ({"CUDA" if torch.cuda.is_available() else "CPU only"}), {cpu_model()}',
        f'- {cpu}',
        f'- **measured wall time: {format_duration(wall_seconds)}** (data generation, training '
        'and evaluation of every stage in this run' +
        ('; a cached teacher is not retrained, its original training time is shown in the '
         'table' if any(r.cached for rs in results.values() for r in rs) else '') + ')',
        '',
    ]
    for task in tasks:
        task_results = results.get(task.name, [])
        rows = build_rows(task, task_results)
        lines += [f'## {task.title}', '', data_summaries.get(task.name, ''), '']
        lines += table_lines(task, rows, markdown=True)
        lines += ['', 'Metrics on the held-out split, in %. Δ: against the student '
                  'trained alone (same schedule and seed). Training time is wall-clock '
                  'on this machine.', '']
        lines += [f'- {line}' for line in findings(task, task_results)]
        lines += ['', 'Runs (work directory, config):', '']
        for result in sorted(task_results, key=lambda r: (ROLES.index(r.role), r.seed)):
            lines.append(f'- {ROLE_NAMES[result.role]} (seed {result.seed}): '
                         f'`{result.work_dir}` — `{result.config}`')
        lines.append('')
    if plot_file:
        lines += ['## Plot', '', f'![metrics and training losses]({osp.basename(plot_file)})',
                  '']
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines))


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
