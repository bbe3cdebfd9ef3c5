# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""What a full teacher-ladder study costs on this machine, from short runs of every config
(see teacher_ladder/cost.py), in CPU time: processes waiting for a core do not count, but
a busy machine still slows each CPU second (shared caches), so the estimate is high there.

    python projects/teacher_ladder/measure_cost.py --task seg --length 40 \\
        [--seeds 3] [--work-dir work_dirs/teacher_ladder_cost]

Writes ``cost_<task>.json`` into the work dir and prints the estimate.
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
                                          cpu_model, pinned_torch, reexec_pinned)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Estimate the cost of a full teacher '
                                     'ladder study from short runs')
    parser.add_argument('--task', choices=['cls', 'cls_paper', 'seg'], default='seg')
    parser.add_argument('--length', type=int, default=None,
                        help='length of each short run in the configs\' unit (default: 1 '
                        'epoch for cls and cls_paper, 40 iterations for seg)')
    parser.add_argument('--seeds', type=int, default=3, help='seeds of the full study')
    parser.add_argument('--work-dir', default='work_dirs/teacher_ladder_cost')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument(NO_PIN_OPTION, dest='pin_cpu', action='store_false', help=NO_PIN_HELP)
    return parser.parse_args(argv)


def default_length(task: str) -> int:
    """Length of a short run of ``task``: 40 iterations (segmentation), one epoch
    (classification ladders, whose schedules are in epochs)."""
    return 40 if task == 'seg' else 1


def main(argv: Optional[List[str]] = None) -> Dict:
    args = parse_args(argv)
    if argv is None and args.pin_cpu:  # as the study runs (see run_study.py)
        reexec_pinned()
    from demo.console import Console, routed_output
    from projects.teacher_ladder.teacher_ladder import metrics  # noqa: F401 (registers)
    from projects.teacher_ladder.teacher_ladder.cost import measure
    from projects.teacher_ladder.teacher_ladder.ladder import TASKS

    task = TASKS[args.task]
    length = args.length or default_length(args.task)
    work_dir = osp.abspath(args.work_dir)
    for path in (work_dir, REPO_ROOT):  # paths travel as --cfg-options, which drop spaces
        if any(c.isspace() for c in path):
            raise ValueError(f'{path!r} contains whitespace, which mmengine\'s --cfg-options '
                             'parsing removes from the data and checkpoint paths; use a '
                             '--work-dir (and checkout) without spaces')
    os.makedirs(work_dir, exist_ok=True)
    with pinned_torch(args.threads, args.pin_cpu) as pinning, routed_output() as router, \
            router.to_file(osp.join(work_dir, 'cost.log')):
        console = Console(router.terminal, 0)
        console.info(f'{cpu_model()}: {pinning.describe()}')
        result = measure(task, work_dir, args.seeds, length, console, pinning.key())
        result['load_average'] = list(os.getloadavg())
        result['cpu'] = pinning.describe()
        path = osp.join(work_dir, f'cost_{args.task}.json')
        with open(path, 'w', encoding='utf-8') as f:
            json.dump(result, f, indent=1)
        wall = result['wall_estimate_seconds']
        console.print(f'{args.task}, {args.seeds} seeds: {result["cpu_seconds"] / 60:.1f} CPU '
                      f'min (teachers {result["teacher_cpu_seconds"] / 60:.1f}); on a '
                      f'machine of its own about {wall["1"] / 60:.1f} min one run at a time, '
                      f'{wall["2"] / 60:.1f} min two at a time. {path}')
    return result


if __name__ == '__main__':
    main()
