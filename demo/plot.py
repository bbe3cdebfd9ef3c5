# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""The demo's figure: per task, the headline metric of the four runs and their losses.

Row per task, three panels: (1) headline metric per run (mean over seeds, error bar =
standard deviation when several seeds ran); (2) the supervised training loss (the
student's own losses, distillation terms excluded) against iterations; (3) the
distillation terms of the KD and DIST runs (on their own scale: KL vs 1 − correlation).
"""
from typing import Dict, List, Sequence

from .report import build_rows
from .stages import StageResult
from .tasks import DISTILLED, ROLE_NAMES, ROLES, DemoTask

COLORS = {'teacher': '#555555', 'student': '#1f77b4', 'kd': '#ff7f0e', 'dist': '#2ca02c'}


def _task_loss(entry: Dict[str, float]) -> float:
    """Total loss minus the distillation terms (``loss_dist_*``)."""
    return entry['loss'] - sum(v for k, v in entry.items() if k.startswith('loss_dist'))


def _dist_loss(entry: Dict[str, float]) -> float:
    return sum(v for k, v in entry.items() if k.startswith('loss_dist'))


def _first_seed(results: Sequence[StageResult], role: str) -> List[StageResult]:
    runs = sorted((r for r in results if r.role == role), key=lambda r: r.seed)
    return runs[:1]


def plot_results(path: str, tasks: Sequence[DemoTask],
                 results: Dict[str, List[StageResult]]) -> str:
    """Draw the figure into ``path`` (PNG) and return ``path``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(tasks), 3, figsize=(15, 4.2 * len(tasks)), squeeze=False)
    for row_axes, task in zip(axes, tasks):
        task_results = results.get(task.name, [])
        bars, curves, dist = row_axes
        rows = build_rows(task, task_results)
        names = [row.name for row in rows]
        means = [row.mean(task.headline.key) for row in rows]
        stds = [row.std(task.headline.key) for row in rows]
        errs = [0.0 if s != s else s for s in stds]  # NaN (one seed) -> no error bar
        bars.bar(range(len(rows)), means, yerr=errs if any(errs) else None, capsize=4,
                 color=[COLORS[row.role] for row in rows])
        for x, mean in enumerate(means):
            if mean == mean:
                bars.text(x, mean, f'{mean:.1f}', ha='center', va='bottom', fontsize=9)
        bars.set_xticks(range(len(rows)))
        bars.set_xticklabels(names, rotation=15, fontsize=9)
        bars.set_ylabel(task.headline.label + ' (%)')
        bars.set_title(f'{task.name}: {task.headline.label} on the held-out split')
        finite = [m + e for m, e in zip(means, errs) if m == m]
        if finite:
            bars.set_ylim(0, max(finite) * 1.15 + 1e-3)

        for role in ROLES:
            for run in _first_seed(task_results, role):
                if not run.losses:
                    continue
                steps = [e['step'] for e in run.losses]
                curves.plot(steps, [_task_loss(e) for e in run.losses], color=COLORS[role],
                            label=f'{ROLE_NAMES[role]} (seed {run.seed})')
                if role in DISTILLED:
                    dist.plot(steps, [_dist_loss(e) for e in run.losses], color=COLORS[role],
                              label=ROLE_NAMES[role])
        curves.set_yscale('log')
        curves.set_xlabel('iteration')
        curves.set_ylabel('supervised loss (log)')
        curves.set_title(f'{task.name}: training loss without distillation terms')
        curves.legend(fontsize=8)
        dist.set_yscale('log')
        dist.set_xlabel('iteration')
        dist.set_ylabel('loss_dist_* (log)')
        dist.set_title(f'{task.name}: distillation loss (KD: KL, DIST: 1 − ρ)')
        if dist.lines:
            dist.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
