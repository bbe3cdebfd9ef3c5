# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""`make demo` = `python -m demo` (from the repository root): train a teacher and a
student three ways (alone, + KD, + DIST) on synthetic COCO- and Cityscapes-format data,
evaluate them, and report. See docs/demo.md.
"""
import argparse
import shlex
import sys
from typing import List, Optional

from mmdist.utils.cpu_determinism import NO_PIN_HELP, NO_PIN_OPTION, reexec_pinned


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='mmdist demo: teacher / student / student + KD / student + DIST on '
        'synthetic data, end to end on CPU (see docs/demo.md)')
    parser.add_argument('--task', choices=['det', 'seg', 'all'], default='all',
                        help='detection, segmentation or both (default)')
    parser.add_argument('--tiny', action='store_true',
                        help='a few images and iterations: checks that every stage runs '
                        '(the numbers mean nothing)')
    parser.add_argument('--out-dir', default='work_dirs/demo',
                        help='data, work dirs, report and plot (default: work_dirs/demo)')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0],
                        help='student seeds; the three students are trained once per seed '
                        '(default: 0)')
    parser.add_argument('--retrain-teacher', action='store_true',
                        help='train the teacher even if a cached one matches')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch intra-op threads (default 1: robust on a shared '
                        'machine, and numbers do not depend on the core count)')
    parser.add_argument(NO_PIN_OPTION, dest='pin_cpu', action='store_false', help=NO_PIN_HELP)
    parser.add_argument('--verbose', action='store_true',
                        help='also print the runners\' own logs (always in each stage\'s '
                        'demo_stage.log)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None):
    """Run the demo with ``argv`` (default: the command line). From the command line,
    the pinned CPU settings are put in the environment first (the process re-executes
    itself with them: torch reads them when it loads)."""
    args = parse_args(argv)
    if argv is None and args.pin_cpu:
        reexec_pinned()
    from demo import DemoOptions, run_demo
    command = ' '.join(['python -m demo'] + [shlex.quote(a) for a in
                                            (sys.argv[1:] if argv is None else argv)])
    options = DemoOptions(task=args.task, out_dir=args.out_dir, tiny=args.tiny,
                          seeds=args.seeds, retrain_teacher=args.retrain_teacher,
                          verbose=args.verbose, threads=args.threads, pin_cpu=args.pin_cpu,
                          command=command)
    return run_demo(options)


if __name__ == '__main__':
    main()
