# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""The study's outputs in the work dir: ``results.json`` (every run and the per-teacher
summary), ``report.md`` (setting, tables, findings, runs) and ``teacher_ladder.png``."""
import datetime
import json
import os
import os.path as osp
import platform
from typing import Dict, List, Sequence

import torch

from .ladder import LadderTask
from .plot import plot_summaries
from .study import TaskRuns, num_runs
from .summary import findings, fmt, fmt_spread, summarize, table_lines


def machine() -> str:
    """Where the numbers were measured."""
    return (f'{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), '
            f'torch {torch.__version__} with {torch.get_num_threads()} thread(s), '
            f'{platform.system()} {platform.release()}, Python {platform.python_version()}')


def _minutes(seconds: float) -> str:
    return f'{seconds / 60:.1f} min'


def _setting_lines(task: LadderTask, runs: TaskRuns, tiny: bool) -> List[str]:
    spec = task.tiny_data if tiny else task.data
    lines = [f'Data: `{runs.data_root}` (fingerprint `{runs.data_fingerprint[:16]}`), '
             f'generator arguments `{json.dumps(spec)}`.', '',
             f'Student: `{task.config(task.student)}`; seeds {runs.seeds} (each method '
             'and teacher gets the same seeds, schedule and hyperparameters; the student '
             'alone is trained once per seed and shared by all teachers).', '',
             'Teachers (trained once, seed 0, cached by config, schedule, data and seed):', '']
    lines += [f'- {t.name}: {t.description} (`{t.config}`)' for t in task.teachers]
    lines += ['', 'Methods (distiller configs around the student config):', '']
    lines += [f'- {m.label}: `{m.config}`' for m in task.methods]
    return lines + ['']


def _every(runs: TaskRuns) -> List:
    return list(runs.teachers.values()) + list(runs.students.values()) + runs.distilled


def makespan(durations: Sequence[float], jobs: int) -> float:
    """Wall time of ``durations`` run in this order on ``jobs`` workers, each job going to
    the first free worker (how :class:`~.executor.Executor` schedules)."""
    workers = [0.0] * jobs
    for duration in durations:
        workers[workers.index(min(workers))] += duration
    return max(workers)


def cost(runs: TaskRuns) -> Dict:
    """CPU seconds of the task's runs and the wall time they would take on a machine of
    their own with 1 and 2 runs at a time: each run's CPU time as its duration (time spent
    waiting for a core does not count), teachers first, then everything else (the study
    overlaps the two, so this is an upper bound of the scheduling)."""
    teachers = [r.train_cpu_seconds + r.test_cpu_seconds for r in runs.teachers.values()]
    rest = []
    for student in runs.students.values():
        rest.append(student.train_cpu_seconds + student.test_cpu_seconds)
        rest += [p.get('cpu_seconds', 0.0) for p in student.paired.values()]
    rest += [r.train_cpu_seconds + r.test_cpu_seconds for r in runs.distilled]
    return dict(cpu_seconds=sum(teachers) + sum(rest),
                teacher_cpu_seconds=sum(teachers),
                wall_estimate_seconds={
                    str(jobs): makespan(teachers, jobs) + makespan(rest, jobs)
                    for jobs in (1, 2)})


def _run_lines(runs: TaskRuns) -> List[str]:
    lines = ['| run | teacher | seed | train s (CPU s) | test s (CPU s) | iterations | '
             'cached | work dir |', '| --- | --- | --- | --- | --- | --- | --- | --- |']
    for run in _every(runs):
        lines.append(f'| {run.role} | {run.teacher or "-"} | {run.seed} | '
                     f'{run.train_seconds:.0f} ({run.train_cpu_seconds:.0f}) | '
                     f'{run.test_seconds:.0f} ({run.test_cpu_seconds:.0f}) | {run.iterations} '
                     f'| {"yes" if run.cached else "no"} | `{run.work_dir}` |')
    return lines


def shared_note(load: Dict[str, List[float]], jobs: int) -> str:
    """What the 1-minute load average says about other jobs: a note when it was above
    ``jobs`` (the study's own runs) by more than one at the start or the end."""
    if max(load['start'][0], load['end'][0]) > jobs + 1:
        return ' (above the number of runs at a time: other jobs shared the cores)'
    return ''


def write_outputs(work_dir: str, all_runs: Sequence[TaskRuns], command: str,
                  wall_seconds: float, tiny: bool, load: Dict[str, List[float]], cpu: str,
                  jobs: int = 1, plot: bool = True) -> Dict[str, str]:
    """Write results.json, report.md and (``plot``) the figure; returns their paths.
    ``cpu``: the CPU settings' line (:meth:`~mmdist.utils.cpu_determinism.CpuPinning.
    describe`)."""
    date = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    summaries = {runs.task.name: summarize(runs) for runs in all_runs}
    methods = [m.name for runs in all_runs for m in runs.task.methods]
    methods = list(dict.fromkeys(methods))
    paths = dict(results=osp.join(work_dir, 'results.json'),
                 report=osp.join(work_dir, 'report.md'))
    if plot and any(s['teachers'] for s in summaries.values()):
        paths['plot'] = plot_summaries(osp.join(work_dir, 'teacher_ladder.png'), summaries,
                                       {r.task.name: r.task.title for r in all_runs}, methods)
    data = dict(command=command, date=date, machine=machine(), cpu=cpu, tiny=tiny, jobs=jobs,
                wall_seconds=wall_seconds, load_average=load, tasks={})
    for runs in all_runs:
        task = runs.task
        every = _every(runs)
        data['tasks'][task.name] = dict(
            title=task.title, data_root=runs.data_root,
            data_fingerprint=runs.data_fingerprint,
            data=task.tiny_data if tiny else task.data, seeds=runs.seeds,
            runs_planned=num_runs(task, runs.seeds), runs_done=len(every),
            teachers=[dict(name=t.name, config=task.config(t.config),
                           description=t.description) for t in task.teachers],
            methods=[dict(name=m.name, label=m.label, config=task.config(m.config))
                     for m in task.methods],
            cost=cost(runs), summary=summaries[task.name],
            runs=[r.to_json() for r in every])
    with open(paths['results'], 'w', encoding='utf-8') as f:
        json.dump(data, f, indent=1)

    lines = ['# Teacher ladder: does the distillation gain hold as the teacher gets '
             'stronger?', '',
             f'Command: `{command}`' + (' (--tiny: the numbers mean nothing)' if tiny else ''),
             '', f'Date: {date}. Machine: {machine()}; {jobs} run(s) at a time. Wall time: '
             f'{_minutes(wall_seconds)}. Load average (1 min) at start '
             f'{load["start"][0]:.2f}, at end {load["end"][0]:.2f}'
             f'{shared_note(load, jobs)}.', '', cpu, '']
    reused = sum(r.cached for runs in all_runs for r in _every(runs))
    if reused:
        lines += [f'{reused} run(s) were reused from an earlier call (marked in the runs '
                  'tables): the wall time above is this call\'s, their times are those of '
                  'the call that trained them.', '']
    for runs in all_runs:
        task, summary = runs.task, summaries[runs.task.name]
        done, spent = data['tasks'][task.name]['runs_done'], data['tasks'][task.name]['cost']
        alone = summary['student']['accuracy']
        lines += [f'## {task.title}', '', *_setting_lines(task, runs, tiny),
                  f'Runs finished: {done} of {num_runs(task, runs.seeds)}. CPU time of '
                  f'those runs: {_minutes(spent["cpu_seconds"])} (teachers '
                  f'{_minutes(spent["teacher_cpu_seconds"])}); on a machine of their own '
                  'that is about '
                  f'{_minutes(spent["wall_estimate_seconds"]["1"])} one run at a time, '
                  f'{_minutes(spent["wall_estimate_seconds"]["2"])} two at a time '
                  '(`--jobs 2`).', '',
                  f'Student alone: {task.metric_label} {fmt_spread(alone)} (seeds: '
                  f'{", ".join(fmt(v) for v in alone["values"])}).',
                  '', *table_lines(summary, methods), '',
                  f'{task.metric_label} and agreement in %, on the held-out split; Δ: '
                  'student minus the student alone with the same seed; mean ± sample '
                  'standard deviation over seeds. Agreement: the share of held-out images '
                  '(pixels, for segmentation) where student and teacher predict the same '
                  'class (`faith/agreement` under `mmdist.PairedTestLoop`). KL(t‖s): '
                  'KL(teacher ‖ student) of the predicted class distributions, in nats, '
                  'averaged over held-out images (pixels) (`faith/kl_teacher_student`).',
                  '']
        lines += [f'- {line}' for line in findings(summary, methods)]
        lines += ['', '<details><summary>runs</summary>', '', *_run_lines(runs), '',
                  '</details>', '']
    if 'plot' in paths:
        lines += ['## Plot', '', f'![gain vs teacher accuracy]({osp.basename(paths["plot"])})',
                  '']
    with open(paths['report'], 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines))
    return paths
