# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""The study's figure: per task, (1) each method's gain over the student alone against
the teacher's accuracy (mean over seeds, error bar = standard deviation), and (2) the
teacher-student top-1 / pixel agreement against the teacher's accuracy."""
from typing import Dict, Sequence

COLORS = {'student': '#1f77b4', 'kd_tau4': '#ff7f0e', 'kd_tau1': '#d62728',
          'dist_w1': '#9467bd', 'dist': '#2ca02c'}


def plot_summaries(path: str, summaries: Dict[str, Dict], titles: Dict[str, str],
                   method_names: Sequence[str]) -> str:
    """Draw the figure of ``summaries`` (task name -> :func:`summarize` output) into
    ``path`` (PNG); returns ``path``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(summaries), 2, figsize=(12, 4.4 * len(summaries)),
                             squeeze=False)
    for (name, summary), (gain_ax, agree_ax) in zip(summaries.items(), axes):
        rows = sorted(summary['teachers'], key=lambda r: r['accuracy'])
        x = [r['accuracy'] for r in rows]
        label = summary['metric_label']
        methods = ['student', *method_names]
        for i, method in enumerate(methods):
            if not rows or method not in rows[0]['methods']:
                continue
            stats = [r['methods'][method] for r in rows]
            style = dict(color=COLORS.get(method), marker='o', capsize=3,
                         label=stats[0]['label'])
            # Methods side by side around each teacher's accuracy (error bars apart).
            shifted = [v + 0.15 * (i - (len(methods) - 1) / 2) for v in x]
            if method != 'student':
                gain_ax.errorbar(shifted, [s['gain']['mean'] for s in stats],
                                 yerr=[s['gain']['std'] for s in stats], **style)
            agree_ax.errorbar(shifted, [s['agreement']['mean'] for s in stats],
                              yerr=[s['agreement']['std'] for s in stats], **style)
        for i, r in enumerate(rows):  # names below the zero line, alternating rows
            gain_ax.annotate(r['name'], (r['accuracy'], 0), textcoords='offset points',
                             xytext=(0, -14 - 11 * (i % 2)), ha='center', fontsize=8,
                             color='#555555')
        gain_ax.axhline(0.0, color='#888888', linewidth=0.8)
        gain_ax.set_xlabel(f'teacher {label} (%)')
        gain_ax.set_ylabel(f'student {label} − student alone (points)')
        gain_ax.set_title(f'{titles[name]}\ngain over the student alone', fontsize=9)
        agree_ax.set_xlabel(f'teacher {label} (%)')
        agree_ax.set_ylabel('teacher–student agreement (%)')
        agree_ax.set_title('pixel agreement with the teacher' if label == 'mIoU' else
                           f'{label} agreement with the teacher', fontsize=9)
        for ax in (gain_ax, agree_ax):
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
