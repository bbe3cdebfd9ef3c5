# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Per teacher: its accuracy, each student's accuracy, the gain over the student alone
(paired by seed: same initial weights and data order) and the teacher-student agreement,
as numbers (``summarize``, stored in results.json) and as markdown tables
(``table_lines``, printed and in report.md; formatted from the summary only)."""
import math
from typing import Dict, List, Optional, Sequence

import numpy as np

from .study import TaskRuns

AGREEMENT = 'faith/agreement'
KL = 'faith/kl_teacher_student'


def spread(values: Sequence[float]) -> Dict:
    """``values`` (one per seed) with mean, sample standard deviation (ddof 1; 0 for one
    value), min and max; NaN statistics for no values."""
    values = [float(v) for v in values]
    if not values:
        return dict(values=[], n=0, mean=math.nan, std=math.nan, min=math.nan, max=math.nan)
    return dict(values=values, n=len(values), mean=float(np.mean(values)),
                std=float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                min=float(min(values)), max=float(max(values)))


def _agreement(metrics: Dict[str, float]) -> float:
    return 100.0 * metrics[AGREEMENT] if AGREEMENT in metrics else math.nan


def _kl(metrics: Dict[str, float]) -> float:
    return metrics.get(KL, math.nan)


def summarize(runs: TaskRuns) -> Dict:
    """The study's numbers per teacher, in ladder order: accuracy, gain and agreement in
    percent, KL(teacher || student) in nats (per image or pixel)."""
    task = runs.task
    students = {seed: run for seed, run in sorted(runs.students.items())}
    alone = {seed: run.metrics[task.metric] for seed, run in students.items()}
    teachers = []
    for teacher in task.teachers:
        run = runs.teachers.get(teacher.name)
        if run is None:
            continue
        paired = [s.paired[teacher.name]['metrics'] for s in students.values()
                  if teacher.name in s.paired]
        methods = {'student': dict(label='student alone',
                                   accuracy=spread(alone.values()),
                                   agreement=spread([_agreement(m) for m in paired]),
                                   kl=spread([_kl(m) for m in paired]))}
        for method in task.methods:
            done = [r for seed in runs.seeds
                    if (r := runs.find(method.name, teacher.name, seed)) is not None]
            methods[method.name] = dict(
                label=method.label,
                seeds=[r.seed for r in done],
                accuracy=spread([r.metrics[task.metric] for r in done]),
                gain=spread([r.metrics[task.metric] - alone[r.seed] for r in done
                             if r.seed in alone]),
                agreement=spread([_agreement(r.metrics) for r in done]),
                kl=spread([_kl(r.metrics) for r in done]))
        teachers.append(dict(name=teacher.name, description=teacher.description,
                             accuracy=run.metrics[task.metric], num_params=run.num_params,
                             iterations=run.iterations, train_seconds=run.train_seconds,
                             cached=run.cached, methods=methods))
    student_params = next((r.num_params for r in students.values()), None)
    return dict(metric=task.metric, metric_label=task.metric_label, seeds=runs.seeds,
                student=dict(accuracy=spread(alone.values()), num_params=student_params,
                             iterations=next((r.iterations for r in students.values()),
                                             None)),
                teachers=teachers)


def fmt(value: float, sign: bool = False, digits: int = 1) -> str:
    """``digits`` decimals (``+`` shown with ``sign``); NaN as ``-``."""
    if value is None or math.isnan(value):
        return '-'
    return f'{value:+.{digits}f}' if sign else f'{value:.{digits}f}'


def fmt_spread(stats: Dict, sign: bool = False, digits: int = 1) -> str:
    """``mean ± std`` over seeds (just the value for one seed; ``-`` for none)."""
    if not stats['n']:
        return '-'
    if stats['n'] == 1:
        return fmt(stats['mean'], sign, digits)
    return f'{fmt(stats["mean"], sign, digits)} ± {stats["std"]:.{digits}f}'


def _params(num: Optional[int]) -> str:
    return '-' if num is None else f'{num / 1e6:.2f}M'


#: The per-method tables after the accuracy table: (summary key, column prefix, decimals).
PER_METHOD_TABLES = (('agreement', 'agreement', 1), ('kl', 'KL(t‖s)', 2))


def table_lines(summary: Dict, method_names: Sequence[str]) -> List[str]:
    """Three markdown tables: accuracy and gain per method; agreement with the teacher
    per method (the student alone too); KL(teacher || student) likewise."""
    label = summary['metric_label']
    first = summary['teachers'][0]['methods'] if summary['teachers'] else {}
    names = [n for n in method_names if n in first]
    head = ['teacher', 'params', f'teacher {label}']
    for name in names:
        head += [f'{first[name]["label"]} {label}', f'Δ {first[name]["label"]}']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
    for row in summary['teachers']:
        cells = [row['name'], _params(row['num_params']), fmt(row['accuracy'])]
        for name in names:
            cells += [fmt_spread(row['methods'][name]['accuracy']),
                      fmt_spread(row['methods'][name]['gain'], sign=True)]
        lines.append('| ' + ' | '.join(cells) + ' |')
    labels = dict(student='student alone', **{n: first[n]['label'] for n in names})
    for key, prefix, digits in PER_METHOD_TABLES:
        head = ['teacher', f'teacher {label}'] + [f'{prefix}: {text}'
                                                  for text in labels.values()]
        lines += ['', '| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
        for row in summary['teachers']:
            cells = [row['name'], fmt(row['accuracy'])] + [
                fmt_spread(row['methods'][name][key], digits=digits) for name in labels]
            lines.append('| ' + ' | '.join(cells) + ' |')
    return lines


def findings(summary: Dict, method_names: Sequence[str]) -> List[str]:
    """Plain statements of the measured trend: each method's gain with the weakest and
    the strongest teacher (by measured accuracy), and how it changes along the ladder."""
    rows = sorted(summary['teachers'], key=lambda r: r['accuracy'])
    if len(rows) < 2:
        return []
    weak, strong = rows[0], rows[-1]
    alone = summary['student']['accuracy']['mean']
    lines = [f'Teachers by measured {summary["metric_label"]}: ' + ', '.join(
        f'{r["name"]} {fmt(r["accuracy"])}' for r in rows) +
        f'; minus the student alone ({fmt(alone)}): ' + ', '.join(
        fmt(r['accuracy'] - alone, sign=True) for r in rows) + ' points.']
    for name in method_names:
        if name not in weak['methods']:
            continue
        gains = [r['methods'][name]['gain'] for r in rows]
        if any(g['n'] == 0 for g in gains):
            continue
        means = [g['mean'] for g in gains]
        diffs = np.diff(means)
        trend = ('rises at every step' if (diffs > 0).all() else
                 'falls at every step' if (diffs < 0).all() else 'is not monotone')
        lines.append(
            f'{weak["methods"][name]["label"]}: gain {fmt_spread(gains[0], True)} with the '
            f'weakest teacher ({weak["name"]}), {fmt_spread(gains[-1], True)} with the '
            f'strongest ({strong["name"]}); change {means[-1] - means[0]:+.1f} points; '
            f'along the ladder it {trend} '
            f'({", ".join(fmt(m, True) for m in means)}).')
    return lines
