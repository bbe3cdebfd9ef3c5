# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""A SegFormer teacher for the demo's CNN segmentation student: train a SegFormer teacher
and the demo's DeepLabV3 teacher on the demo's data, then per seed the demo's student
alone, with DIST from the SegFormer teacher (with and without the auxiliary term) and with
DIST from the DeepLabV3 teacher; print and write the table (``report.md``,
``results.json`` in the work dir).

    python projects/segformer_teacher/run.py --seeds 0 1 2

Every run is ``tools/train.py`` then ``tools/test.py`` (called in this process) on a
config, with the demo's pinned CPU settings unless ``--no-pin-cpu`` (see docs/demo.md); a
run whose ``result.json`` holds the same config, options and CPU settings is reused, so an
interrupted study resumes.
"""
import argparse
import json
import os.path as osp
import statistics
import sys
import time
from typing import Dict, List

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

from demo.data import prepare_data  # noqa: E402
from demo.paths import demo_config, load_tool  # noqa: E402
from demo.tasks import SEGMENTATION  # noqa: E402

from mmdist.utils.cpu_determinism import (NO_PIN_HELP, NO_PIN_OPTION,  # noqa: E402
                                          cpu_model, pinned_torch, reexec_pinned)

CONFIGS = osp.join(osp.dirname(osp.abspath(__file__)), 'configs')
METRICS = ('mIoU', 'mAcc', 'aAcc')
#: name -> (label, config, extra --cfg-options); teachers are trained once (seed 0).
TEACHERS = {
    'segformer': ('SegFormer teacher', osp.join(CONFIGS, 'teacher_segformer.py'), []),
    'cnn': ("the demo's DeepLabV3 teacher", demo_config('seg_teacher.py'), []),
}
#: name -> (label, config, teacher or None, extra --cfg-options), trained once per seed.
STUDENTS = {
    'student': ('student', demo_config('seg_student.py'), None, []),
    'dist': ('student + DIST (SegFormer)', osp.join(CONFIGS, 'student_dist_segformer.py'),
             'segformer', []),
    'dist_noaux': ('student + DIST (SegFormer), loss_aux=None',
                   osp.join(CONFIGS, 'student_dist_segformer.py'), 'segformer',
                   ['model.loss_aux=None']),
    'dist_cnn': ('student + DIST (DeepLabV3)', demo_config('seg_student_dist.py'), 'cnn', []),
}


def train_and_test(config: str, work_dir: str, options: List[str], cpu: Dict) -> Dict:
    """Train ``config`` into ``work_dir`` and test its last checkpoint (or reuse the run
    with the same config, options and CPU settings ``cpu``)."""
    result_file = osp.join(work_dir, 'result.json')
    key = dict(config=osp.relpath(config, ROOT), options=options, cpu=cpu)
    if osp.isfile(result_file):
        with open(result_file, encoding='utf-8') as f:
            result = json.load(f)
        if result['key'] == key:
            return result
    from mmengine.runner import find_latest_checkpoint
    name = f'segformer_teacher_{osp.basename(work_dir)}_{time.time_ns()}'
    start = time.monotonic()
    runner = load_tool('train').build_runner(
        [config, '--work-dir', work_dir, '--cfg-options', *options, f'visualizer.name={name}'])
    runner.train()
    model = getattr(runner.model, 'student', runner.model)
    params, iters = sum(p.numel() for p in model.parameters()), runner.iter
    train_seconds = time.monotonic() - start
    del runner, model
    checkpoint = find_latest_checkpoint(work_dir)
    metrics = load_tool('test').main(
        [config, checkpoint, '--work-dir', osp.join(work_dir, 'test'), '--cfg-options',
         *options, f'visualizer.name={name}_test'])
    result = dict(key=key, checkpoint=checkpoint, params=params, iters=iters,
                  train_seconds=train_seconds,
                  metrics={k: float(metrics[k]) for k in METRICS})
    with open(result_file, 'w', encoding='utf-8') as f:
        json.dump(result, f, indent=1)
    return result


def mean_std(values: List[float]) -> str:
    if len(values) == 1:
        return f'{values[0]:.1f}'
    return f'{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}'


def report(results: Dict, seeds: List[int]) -> str:
    """Markdown: mean ± std over ``seeds`` per run, then mIoU per seed."""
    lines = ['| model | params | iters | mIoU | mAcc | aAcc | Δ mIoU |',
             '| --- | --- | --- | --- | --- | --- | --- |']
    for name, (label, *_) in TEACHERS.items():
        run = results['teachers'][name]
        lines.append(f"| {label} | {run['params'] / 1e6:.2f}M | {run['iters']} | " +
                     ' | '.join(f"{run['metrics'][k]:.1f}" for k in METRICS) + ' |  |')
    base = [results['student'][s]['metrics']['mIoU'] for s in seeds]
    for name, (label, *_) in STUDENTS.items():
        runs = [results[name][s] for s in seeds]
        cells = [mean_std([r['metrics'][k] for r in runs]) for k in METRICS]
        delta = '' if name == 'student' else mean_std(
            [r['metrics']['mIoU'] - b for r, b in zip(runs, base)])
        lines.append(f"| {label} | {runs[0]['params'] / 1e6:.2f}M | {runs[0]['iters']} | " +
                     ' | '.join(cells) + f' | {delta} |')
    lines += ['', '| seed | ' + ' | '.join(label for label, *_ in STUDENTS.values()) + ' |',
              '| --- |' + ' --- |' * len(STUDENTS)]
    lines += [f'| {s} | ' + ' | '.join(f"{results[name][s]['metrics']['mIoU']:.1f}"
                                       for name in STUDENTS) + ' |' for s in seeds]
    return '\n'.join(lines) + '\n'


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--work-dir', default='work_dirs/segformer_teacher')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--tiny', action='store_true',
                        help='8 images, 2 iterations per run: checks that every run works')
    parser.add_argument(NO_PIN_OPTION, dest='pin_cpu', action='store_false', help=NO_PIN_HELP)
    args = parser.parse_args(argv)
    if argv is None and args.pin_cpu:  # from the command line: pinned environment first
        reexec_pinned()
    with pinned_torch(args.threads, args.pin_cpu) as pinning:
        print(f'{cpu_model()}: {pinning.describe()}', flush=True)
        run_study(args, pinning)


def run_study(args: argparse.Namespace, pinning) -> None:
    """The teachers, then per seed the students; the table into ``report.md``."""
    cpu = pinning.key()
    work = osp.abspath(args.work_dir)
    spec = SEGMENTATION.tiny_data if args.tiny else SEGMENTATION.data
    data = prepare_data(SEGMENTATION, osp.join(work, 'data'), spec)
    options = SEGMENTATION.data_options(data.root.rstrip('/') + '/')
    if args.tiny:
        options += SEGMENTATION.schedule_options(2)
    results: Dict = dict(teachers={})
    for name, (_, config, extra) in TEACHERS.items():
        work_dir = osp.join(work, 'teacher' if name == 'segformer' else f'teacher_{name}')
        results['teachers'][name] = train_and_test(
            config, work_dir, options + extra + ['randomness.seed=0'], cpu)
    for seed in args.seeds:
        for name, (_, config, teacher, extra) in STUDENTS.items():
            run_options = options + extra + [f'randomness.seed={seed}']
            if teacher is not None:
                ckpt = results['teachers'][teacher]['checkpoint']
                run_options.append(f'model.teacher_ckpt={ckpt}')
            results.setdefault(name, {})[seed] = train_and_test(
                config, osp.join(work, name, f'seed{seed}'), run_options, cpu)
    table = f'{cpu_model()}: {pinning.describe()}\n\n' + report(results, args.seeds)
    with open(osp.join(work, 'results.json'), 'w', encoding='utf-8') as f:
        json.dump(dict(results, cpu=pinning.describe()), f, indent=1)
    with open(osp.join(work, 'report.md'), 'w', encoding='utf-8') as f:
        f.write(table)
    print(table)


if __name__ == '__main__':
    main()
