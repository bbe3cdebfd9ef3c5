# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Pilot runs for choosing a ladder: configs trained alone (no distillation) on a task's
data with its full schedule, tested, and listed with their accuracy and CPU time. By
default the task's student and teachers; ``--configs`` names others (e.g. candidates).

    python projects/teacher_ladder/pilot.py --task cls_paper [--configs A.py B.py] \\
        [--seeds 0] [--work-dir work_dirs/teacher_ladder_pilot] [--tiny] [--no-pin-cpu]

Writes ``pilot_<task>.json`` into the work dir and prints a table. Finished runs are
reused (same key as the study's: config, schedule, data, seed, CPU settings). Pinned
CPU code paths by default, as the study (``--no-pin-cpu``: faster, machine-dependent).
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Optional

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from mmdist.utils.cpu_determinism import (NO_PIN_HELP, NO_PIN_OPTION,  # noqa: E402
                                          pinned_torch, reexec_pinned)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    from projects.teacher_ladder.teacher_ladder.ladder import TASKS
    parser = argparse.ArgumentParser(description='Train configs of a teacher-ladder task '
                                     'alone (no distillation), to choose a ladder')
    parser.add_argument('--task', choices=sorted(TASKS), default='cls_paper')
    parser.add_argument('--configs', nargs='+', default=None,
                        help='config files (default: the task\'s student and teachers)')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0],
                        help='seeds of every config (default: 0)')
    parser.add_argument('--work-dir', default='work_dirs/teacher_ladder_pilot')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--tiny', action='store_true',
                        help='the task\'s --tiny data and schedule (a smoke test)')
    parser.add_argument(NO_PIN_OPTION, dest='pin_cpu', action='store_false', help=NO_PIN_HELP)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> List[Dict]:
    args = parse_args(argv)
    if argv is None and args.pin_cpu:  # as the study runs (see run_study.py)
        reexec_pinned()
    from demo.console import Console, routed_output
    from projects.teacher_ladder.teacher_ladder.data import prepare_data
    from projects.teacher_ladder.teacher_ladder.ladder import TASKS
    from projects.teacher_ladder.teacher_ladder.runs import train_or_reuse

    task = TASKS[args.task]
    configs = args.configs or [task.config(task.student)] + [
        task.config(t.config) for t in task.teachers]
    work_dir = osp.abspath(args.work_dir)
    os.makedirs(work_dir, exist_ok=True)
    rows = []
    with pinned_torch(args.threads, args.pin_cpu) as pinning, routed_output() as router, \
            router.to_file(osp.join(work_dir, 'pilot.log')):
        console = Console(router.terminal, 0)
        root = osp.join(work_dir, task.name)
        fingerprint = prepare_data(task, osp.join(root, 'data'),
                                   task.tiny_data if args.tiny else task.data)
        schedule = task.schedule_options(task.tiny_length) if args.tiny else []
        for config in configs:
            name = osp.splitext(osp.basename(config))[0]
            for seed in args.seeds:
                key_options = schedule + [f'randomness.seed={seed}']
                run = train_or_reuse(name, osp.abspath(config), root,
                                     task.data_options(osp.join(root, 'data')) + key_options,
                                     key_options, fingerprint, pinning.key(), seed)
                rows.append(dict(config=config, seed=seed, metric=run.metrics[task.metric],
                                 num_params=run.num_params, iterations=run.iterations,
                                 cpu_seconds=run.train_cpu_seconds + run.test_cpu_seconds,
                                 wall_seconds=run.train_seconds + run.test_seconds,
                                 work_dir=run.work_dir))
                console.info(f'{name} seed {seed}: {task.metric_label} '
                             f'{run.metrics[task.metric]:.1f} ({run.num_params / 1e6:.2f}M '
                             f'params, {run.iterations} iterations, '
                             f'{rows[-1]["cpu_seconds"] / 60:.1f} CPU min)')
        path = osp.join(work_dir, f'pilot_{task.name}.json')
        with open(path, 'w', encoding='utf-8') as f:
            json.dump(dict(task=task.name, tiny=args.tiny,
                           load_average=list(os.getloadavg()), runs=rows), f, indent=1)
        console.print(f'| config | seed | params | iterations | {task.metric_label} | CPU min |')
        console.print('| --- | --- | --- | --- | --- | --- |')
        for row in rows:
            console.print(f'| {osp.basename(row["config"])} | {row["seed"]} | '
                          f'{row["num_params"] / 1e6:.2f}M | {row["iterations"]} | '
                          f'{row["metric"]:.1f} | {row["cpu_seconds"] / 60:.1f} |')
        console.print(path)
    return rows


if __name__ == '__main__':
    main()
