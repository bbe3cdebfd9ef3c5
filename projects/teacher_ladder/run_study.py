# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""The teacher ladder: a fixed small student distilled from teachers of increasing
strength with KD (tau 4 and tau 1) and DIST, several seeds each (see README.md).

    python projects/teacher_ladder/run_study.py [--task cls cls_paper seg|all] [--seeds 0 1 2] \\
        [--work-dir work_dirs/teacher_ladder] [--tiny]

``--task`` takes several ladders (default: both classification ladders, ``cls cls_paper``).

Writes results.json, report.md and teacher_ladder.png into the work dir and prints the
tables. Finished runs are reused by a later call with the same settings (resume).
"""
import argparse
import os
import os.path as osp
import shlex
import sys
from typing import Dict, List, Optional

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:  # `projects.teacher_ladder...` (the configs' custom_imports)
    sys.path.insert(0, REPO_ROOT)

from mmdist.utils.cpu_determinism import (NO_PIN_HELP, NO_PIN_OPTION,  # noqa: E402
                                          cpu_model, pinned_torch, reexec_pinned)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Teacher ladder: KD vs DIST as the '
                                     'teacher gets stronger')
    parser.add_argument('--task', nargs='+', choices=['cls', 'cls_paper', 'seg', 'all'],
                        default=['cls', 'cls_paper'],
                        help='ladders to run, in this order: cls (the wide-gap '
                        'classification ladder), cls_paper (classification in the paper\'s '
                        'regime), seg (segmentation), all (every one); default: cls cls_paper')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2],
                        help='student seeds (default: 0 1 2)')
    parser.add_argument('--work-dir', default='work_dirs/teacher_ladder',
                        help='data, runs, results.json, report.md, teacher_ladder.png')
    parser.add_argument('--tiny', action='store_true',
                        help='a few images, 1 epoch / iteration per run: checks that every '
                        'stage runs (the numbers mean nothing)')
    parser.add_argument('--retrain', action='store_true',
                        help='ignore finished runs in the work dir (teachers included)')
    parser.add_argument('--jobs', type=int, default=1,
                        help='runs at a time, each in its own process (default 1: one '
                        'after another in this process); 2 uses both cores of a 2-core '
                        'machine')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch intra-op threads per run (default 1, as the demo)')
    parser.add_argument(NO_PIN_OPTION, dest='pin_cpu', action='store_false', help=NO_PIN_HELP)
    parser.add_argument('--verbose', action='store_true',
                        help="also print the runners' logs (always in each run's run.log)")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Dict[str, str]:
    """Run the study; returns the paths of results.json, report.md and the plot. From the
    command line, the pinned CPU settings are put in the environment first (the process
    re-executes itself with them), as ``python -m demo`` does."""
    args = parse_args(argv)
    if args.threads < 1:
        raise ValueError(f'--threads must be >= 1, got {args.threads}')
    if argv is None and args.pin_cpu:
        reexec_pinned()
    seeds = list(dict.fromkeys(args.seeds))
    from demo.console import Console, routed_output
    from projects.teacher_ladder.teacher_ladder import metrics  # noqa: F401 (registers)
    from projects.teacher_ladder.teacher_ladder.executor import Executor
    from projects.teacher_ladder.teacher_ladder.ladder import TASKS
    from projects.teacher_ladder.teacher_ladder.report import write_outputs
    from projects.teacher_ladder.teacher_ladder.study import Settings, TaskStudy, num_runs
    from projects.teacher_ladder.teacher_ladder.summary import summarize, table_lines

    command = ' '.join(['projects/teacher_ladder/run_study.py'] + [
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)])
    names = list(TASKS) if 'all' in args.task else list(dict.fromkeys(args.task))
    tasks = [TASKS[name] for name in names]
    work_dir = osp.abspath(args.work_dir)
    for path in (work_dir, REPO_ROOT):  # paths travel as --cfg-options, which drop spaces
        if any(c.isspace() for c in path):
            raise ValueError(f'{path!r} contains whitespace, which mmengine\'s --cfg-options '
                             'parsing removes from the data and checkpoint paths; use a '
                             '--work-dir (and checkout) without spaces')
    os.makedirs(work_dir, exist_ok=True)
    load = dict(start=list(os.getloadavg()))
    # Runs log into their own run.log; anything else printed goes to study.log.
    with pinned_torch(args.threads, args.pin_cpu) as pinning, \
            Executor(args.jobs, args.threads, args.pin_cpu) as executor, \
            routed_output(echo=args.verbose) as router, \
            router.to_file(osp.join(work_dir, 'study.log')):
        settings = Settings(work_dir=work_dir, cpu=pinning.key(), seeds=seeds, tiny=args.tiny,
                            retrain=args.retrain)
        console = Console(router.terminal, sum(num_runs(t, seeds) for t in tasks))
        console.info(f'{command}: {args.jobs} run(s) at a time, {args.threads} torch '
                     f'thread(s) each; logs under {work_dir}')
        console.info(f'{cpu_model()}: {pinning.describe()}')
        done = []

        def write(runs, plot=False):
            load['end'] = list(os.getloadavg())
            return write_outputs(work_dir, done + [runs], command, console.elapsed,
                                 args.tiny, load, pinning.describe(), jobs=args.jobs,
                                 plot=plot)

        for task in tasks:
            runs = TaskStudy(task, settings, executor, console, on_progress=write).run()
            paths = write(runs, plot=True)
            done.append(runs)
        for runs in done:
            console.print(f'\n{runs.task.title}')
            names = [m.name for m in runs.task.methods]
            for line in table_lines(summarize(runs), names):
                console.print(line)
        console.print('\n' + '\n'.join(f'{k}: {v}' for k, v in paths.items()))
    return paths


if __name__ == '__main__':
    main()
