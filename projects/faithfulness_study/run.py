# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Faithfulness study on the demo's segmentation data (docs/faithfulness.md, "Measured on
the demo data").

Study A: balanced demo data and the demo teacher; DIST vs DIST + CutMix.
Study B: imbalanced data (ring and diamond 10x rarer) with its own teacher; KD, DIST,
DIST + KL anchor, class-aware DIST, and both options.
Study C: as B with triangle and cross 10x rarer (shapes without a common look-alike).
Study D: as C with triangle and cross 4x rarer.
Study E: study D's imbalance for detection (RetinaNet on the demo's COCO-format shapes):
box AP, per-class AP, fidelity recall per class and class-balanced D-ECE.
Study F: the detection distiller's dense row layouts (per anchor / per location, padding
masked / kept) on the demo's balanced detection data and teacher.

Every run trains a ``configs/demo/`` config through ``tools/train.py`` and is tested
through ``tools/test.py`` with ``mmdist.PairedTestLoop``; the study definitions and the
option values are in :mod:`projects.faithfulness_study.variants`. Writes ``report.md`` and
``results.json`` into ``--out-dir`` and prints the tables.

    OMP_NUM_THREADS=1 python projects/faithfulness_study/run.py \\
        --out-dir work_dirs/faithfulness_study --study all --seeds 0

(from the repository root; the study uses the demo's pieces, ``demo/``).
"""
import argparse
import os.path as osp
import shlex
import sys
from typing import Dict, List, Optional

#: The repository root: ``demo`` and ``projects.faithfulness_study`` import from there.
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from mmdist.utils.cpu_determinism import (NO_PIN_HELP, NO_PIN_OPTION,  # noqa: E402
                                          cpu_model, pinned_torch, reexec_pinned)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Faithfulness study of distilled '
                                     'segmentation students on the demo data')
    parser.add_argument('--out-dir', default='work_dirs/faithfulness_study',
                        help='data, runs, report.md and results.json')
    parser.add_argument('--study', choices=['A', 'B', 'C', 'D', 'E', 'F', 'all'], nargs='+',
                        default=['all'],
                        help='A: DIST vs DIST + CutMix; B, C, D: imbalanced data (ring and '
                        'diamond 10x / triangle and cross 10x / 4x rarer), KD vs the DIST '
                        'options; E: study D for detection (RetinaNet); F: the detection '
                        'DIST row layouts; all: every study (default)')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0],
                        help='student seeds (default: 0)')
    parser.add_argument('--tiny', action='store_true',
                        help='the demo\'s tiny data and 2 iterations per run (a smoke '
                        'test; the numbers mean nothing)')
    parser.add_argument('--teacher-cache', nargs='*', default=['work_dirs/demo/seg'],
                        help='demo task folders whose cached teachers are reused when '
                        'config and data match (default: work_dirs/demo/seg)')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch intra-op threads (default 1, as the demo)')
    parser.add_argument(NO_PIN_OPTION, dest='pin_cpu', action='store_false', help=NO_PIN_HELP)
    parser.add_argument('--verbose', action='store_true',
                        help='also print the runners\' logs (always in each run\'s '
                        'demo_stage.log)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Dict:
    """Run the selected studies; returns the paths of the report and the JSON. From the
    command line, the pinned CPU settings are put in the environment first (the process
    re-executes itself with them), as ``python -m demo`` does."""
    args = parse_args(argv)
    if not args.seeds:
        raise ValueError('--seeds needs at least one seed')
    if args.threads < 1:
        raise ValueError(f'--threads must be >= 1, got {args.threads}')
    if argv is None and args.pin_cpu:
        reexec_pinned()
    from demo.console import Console, routed_output
    from projects.faithfulness_study import STUDIES, StudySettings, run_study
    from projects.faithfulness_study.report import write_outputs
    from projects.faithfulness_study.table import markdown_table

    command = ' '.join(['projects/faithfulness_study/run.py'] + [
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)])
    names = list(STUDIES) if 'all' in args.study else list(dict.fromkeys(args.study))
    studies = [STUDIES[name] for name in names]
    seeds = list(dict.fromkeys(args.seeds))
    with pinned_torch(args.threads, args.pin_cpu) as pinning, \
            routed_output(echo=args.verbose) as router:
        settings = StudySettings(out_dir=osp.abspath(args.out_dir), seeds=seeds,
                                 tiny=args.tiny, cpu=pinning.key(),
                                 teacher_cache_dirs=[osp.abspath(d)
                                                     for d in args.teacher_cache])
        stages = sum(1 + len(s.variants) * len(seeds) for s in studies)
        console = Console(router.terminal, num_stages=stages)
        console.info(f'{cpu_model()}: {pinning.describe()}')
        results = []
        for study in studies:  # outputs rewritten after each study: partial results
            results.append(run_study(study, settings, console, router))
            paths = write_outputs(settings.out_dir, results, command, console.elapsed,
                                  args.tiny, pinning.describe())
        for result in results:
            console.print(f'\nStudy {result.study.name}: {result.study.title}')
            for line in markdown_table(result.study, [result.teacher] + result.students):
                console.print(line)
        console.print(f'\nreport:  {paths["report"]}\nresults: {paths["results"]}')
    return paths


if __name__ == '__main__':
    main()
