# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""RTMDet, YOLOX and cross-head distillation on the demo's detection data.

Trains the teachers of :mod:`projects.detection_heads.experiments` once (cached like the
demo's teacher, keyed by config, schedule and data) and every student run per seed, each
through ``tools/train.py`` and tested through ``tools/test.py`` (the demo's
:func:`~demo.stages.run_stage`), on the demo's synthetic COCO-format data with the demo
configs' schedule. A finished run is kept (``result.json`` in its work directory, keyed
by its resolved config, options, teacher and data) and not trained again. Writes
``report.md`` and ``results.json`` into ``--out-dir`` and prints the tables.

    OMP_NUM_THREADS=1 python projects/detection_heads/run.py --seeds 0 1 2

(from the repository root).
"""
import argparse
import json
import math
import os
import os.path as osp
import platform
import shlex
import shutil
import sys
from typing import Dict, List, Optional

#: The repository root: ``demo`` and ``projects.detection_heads`` import from there.
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from mmdist.utils.cpu_determinism import (NO_PIN_HELP, NO_PIN_OPTION,  # noqa: E402
                                          cpu_model, pinned_torch, reexec_pinned)

#: Reported metrics: key, label (CocoMetric fractions, shown in %).
METRICS = (('coco/bbox_mAP', 'box AP'), ('coco/bbox_mAP_50', 'AP50'),
           ('coco/bbox_mAP_75', 'AP75'))


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    from projects.detection_heads.experiments import TABLES
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out-dir', default='work_dirs/detection_heads',
                        help='data, runs, report.md and results.json')
    parser.add_argument('--tables', nargs='+', choices=list(TABLES), default=list(TABLES),
                        help='which tables to measure (default: all)')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2],
                        help='student seeds (default: 0 1 2); teachers: seed 0')
    parser.add_argument('--tiny', action='store_true',
                        help='the demo\'s tiny data and schedule (a smoke test; the numbers '
                        'mean nothing)')
    parser.add_argument('--teacher-cache', nargs='*', default=['work_dirs/demo/det'],
                        help='demo task folders whose cached teachers are reused when config '
                        'and data match (default: work_dirs/demo/det, the demo\'s RetinaNet)')
    parser.add_argument('--threads', type=int, default=1, help='torch threads (default 1)')
    parser.add_argument(NO_PIN_OPTION, dest='pin_cpu', action='store_false', help=NO_PIN_HELP)
    parser.add_argument('--verbose', action='store_true', help='also print the runners\' logs')
    return parser.parse_args(argv)


class Measurement:
    """Data, teachers and student runs of one invocation."""

    def __init__(self, args: argparse.Namespace, cpu: Dict, console, router) -> None:
        from demo.data import prepare_data
        from demo.tasks import DETECTION
        self.args, self.cpu, self.console, self.router = args, cpu, console, router
        self.task = DETECTION
        self.out_dir = osp.abspath(args.out_dir)
        spec = DETECTION.tiny_data if args.tiny else DETECTION.data
        self.data = prepare_data(DETECTION, osp.join(self.out_dir, 'data'), spec)
        self.data_options = DETECTION.data_options(self.data.root)
        console.info(f'data {"reused" if self.data.reused else "generated"} in '
                     f'{self.data.root} (fingerprint {self.data.fingerprint[:12]})')
        self.teachers: Dict = {}  # name -> (StageResult, checkpoint copy, cache key)

    def _schedule(self, role: str) -> List[str]:
        if not self.args.tiny:
            return []
        return self.task.schedule_options(self.task.tiny_schedule[role])

    def _test_options(self, distilled: bool) -> List[str]:
        if not self.args.tiny:
            return []
        # Barely trained models: no score passes the stock threshold (see demo.tasks).
        return [f'model{".student" if distilled else ""}.test_cfg.score_thr=0.0']

    def teacher(self, name: str):
        """The cached or newly trained teacher ``name``."""
        from demo.cache import TeacherCache, teacher_key
        from demo.paths import demo_config
        from demo.stages import run_stage
        from projects.detection_heads.experiments import TEACHERS
        if name in self.teachers:
            return self.teachers[name]
        config = demo_config(TEACHERS[name].config)
        schedule = self._schedule('teacher')
        key = teacher_key(config, schedule, self.data.fingerprint, self.cpu)
        folder = osp.join(self.out_dir, name)
        caches = [osp.abspath(d) for d in self.args.teacher_cache] + [folder]
        result = next((r for r in (TeacherCache(d).load(key) for d in caches) if r), None)
        if result is not None:
            self.console.begin_stage(f'teacher {name}: cached {key} ({result.work_dir})')
        else:
            self.console.begin_stage(f'teacher {name}: training {TEACHERS[name].config} '
                                     f'(cache key {key})')
            cache = TeacherCache(folder)
            work_dir = cache.work_dir(key)
            if osp.isdir(work_dir):
                shutil.rmtree(work_dir)  # an unfinished earlier attempt
            result = run_stage(task='det', role='teacher', seed=0, config=config,
                               work_dir=work_dir, options=self.data_options + schedule,
                               test_options=self._test_options(False), console=self.console,
                               router=self.router)
            cache.store(key, result)
        checkpoint = osp.join(folder, 'teacher.pth')
        shutil.copyfile(result.checkpoint, checkpoint)
        self.console.detail(f'teacher {name}: {_headline(result)}')
        self.teachers[name] = (result, checkpoint, key)
        return self.teachers[name]

    def student(self, run, seed: int):
        """The finished run ``run`` with ``seed`` (trained now unless kept)."""
        from demo.cache import teacher_key
        from demo.paths import demo_config
        from demo.stages import StageResult, run_stage
        config = demo_config(run.config)
        options = self.data_options + self._schedule('student') + [f'randomness.seed={seed}']
        teacher_id = None
        if run.teacher is not None:
            _, checkpoint, teacher_id = self.teacher(run.teacher)
            options.append(f'model.teacher_ckpt={checkpoint}')
        options += list(run.options)
        work_dir = osp.join(self.out_dir, run.name, f'seed{seed}')
        key = teacher_key(config, options + [f'teacher={teacher_id}'], self.data.fingerprint,
                          self.cpu)
        kept = osp.join(work_dir, 'result.json')
        if osp.isfile(kept):
            with open(kept, encoding='utf-8') as f:
                data = json.load(f)
            if data.get('key') == key:
                self.console.begin_stage(f'{run.label}, seed {seed}: kept ({work_dir})')
                return StageResult.from_json(data['result'], base_dir=work_dir)
        if osp.isdir(work_dir):
            shutil.rmtree(work_dir)
        self.console.begin_stage(f'{run.label}, seed {seed}: training {run.config}')
        result = run_stage(task='det', role=run.name, seed=seed, config=config,
                           work_dir=work_dir, options=options,
                           test_options=self._test_options(run.teacher is not None),
                           console=self.console, router=self.router)
        with open(kept, 'w', encoding='utf-8') as f:
            json.dump(dict(key=key, result=result.to_json(base_dir=work_dir)), f, indent=1)
        self.console.detail(f'{run.label}: {_headline(result)} (trained in '
                            f'{result.train_seconds / 60:.1f} min)')
        return result


def _headline(result) -> str:
    value = result.metrics.get('coco/bbox_mAP')
    return 'box AP n/a' if value is None else f'box AP {value * 100:.1f}'


def _mean_std(values: List[float]) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return 'n/a'
    mean = sum(values) / len(values)
    if len(values) < 2:
        return f'{mean:.1f}'
    std = math.sqrt(sum((v - mean)**2 for v in values) / (len(values) - 1))
    return f'{mean:.1f} ± {std:.1f}'


def table_lines(table, teachers: Dict, students: Dict) -> List[str]:
    """A markdown table: teachers, then each run (mean ± std over seeds, per-seed box AP,
    per-seed difference to the table's first run, the student alone)."""
    from projects.detection_heads.experiments import RUNS
    header = ['model', 'params', *(label for _, label in METRICS), 'box AP per seed',
              'Δ box AP per seed', 'train time']
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '|'.join(' --- ' for _ in header) + '|']
    for name in table.teachers:
        result = teachers[name][0]
        cells = [f'teacher ({name}, seed 0)', f'{result.num_params / 1e6:.2f}M']
        cells += [_mean_std([result.metrics.get(key, math.nan) * 100]) for key, _ in METRICS]
        cells += ['', '', f'{result.train_seconds / 60:.1f} min']
        lines.append('| ' + ' | '.join(cells) + ' |')
    baseline = students[table.runs[0]]
    for name in table.runs:
        results = students[name]
        seeds = sorted(results)
        ap = {s: results[s].metrics.get('coco/bbox_mAP', math.nan) * 100 for s in seeds}
        cells = [RUNS[name].label, f'{results[seeds[0]].num_params / 1e6:.2f}M']
        cells += [_mean_std([results[s].metrics.get(key, math.nan) * 100 for s in seeds])
                  for key, _ in METRICS]
        cells.append(', '.join(f'{ap[s]:.1f}' for s in seeds))
        if name == table.runs[0]:
            cells.append('')
        else:
            deltas = [ap[s] - baseline[s].metrics.get('coco/bbox_mAP', math.nan) * 100
                      for s in seeds if s in baseline]
            cells.append(', '.join(f'{d:+.1f}' for d in deltas) +
                         f' (mean {sum(deltas) / len(deltas):+.1f})')
        minutes = sum(r.train_seconds for r in results.values()) / len(results) / 60
        cells.append(f'{minutes:.1f} min')
        lines.append('| ' + ' | '.join(cells) + ' |')
    return lines


def main(argv: Optional[List[str]] = None) -> Dict[str, str]:
    """Measure the selected tables; returns the paths of the report and the JSON. From the
    command line, the pinned CPU settings are put in the environment first (the process
    re-executes itself with them), as ``python -m demo`` does."""
    args = parse_args(argv)
    if not args.seeds:
        raise ValueError('--seeds needs at least one seed')
    if argv is None and args.pin_cpu:
        reexec_pinned()
    import torch

    from demo.console import Console, format_duration, routed_output
    from projects.detection_heads.experiments import RUNS, TABLES
    command = ' '.join(['projects/detection_heads/run.py'] + [
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)])
    tables = [TABLES[name] for name in dict.fromkeys(args.tables)]
    runs = list(dict.fromkeys(name for table in tables for name in table.runs))
    seeds = list(dict.fromkeys(args.seeds))
    with pinned_torch(args.threads, args.pin_cpu) as pinning, \
            routed_output(echo=args.verbose) as router:
        teacher_names = list(dict.fromkeys(t for table in tables for t in table.teachers))
        stages = len(teacher_names) + len(runs) * len(seeds)
        console = Console(router.terminal, num_stages=stages)
        console.info(f'{cpu_model()}: {pinning.describe()}')
        measurement = Measurement(args, pinning.key(), console, router)
        teachers = {name: measurement.teacher(name) for name in teacher_names}
        students = {name: {} for name in runs}
        for seed in seeds:
            for name in runs:
                students[name][seed] = measurement.student(RUNS[name], seed)
        lines = ['# RTMDet, YOLOX and cross-head distillation on the demo data', '',
                 f'- command: `{command}`',
                 f'- mode: {"--tiny (numbers meaningless)" if args.tiny else "full"}',
                 f'- machine: {cpu_model()}, {os.cpu_count()} CPU cores, torch '
                 f'{torch.__version__}, {platform.system()}',
                 f'- {pinning.describe()}',
                 f'- data: `{measurement.data.root}` (fingerprint '
                 f'`{measurement.data.fingerprint[:16]}`)',
                 f'- wall time of this invocation: {format_duration(console.elapsed)}', '',
                 'Box AP (%, mmdet CocoMetric) on the held-out split: mean ± standard '
                 'deviation over the seeds; Δ: against the student alone, same seed.', '']
        for table in tables:
            lines += [f'## {table.title}', '', *table_lines(table, teachers, students), '']
        out = measurement.out_dir
        report, results_json = osp.join(out, 'report.md'), osp.join(out, 'results.json')
        with open(report, 'w', encoding='utf-8') as f:
            f.write('\n'.join(lines))
        with open(results_json, 'w', encoding='utf-8') as f:
            json.dump(dict(command=command, tiny=args.tiny, seeds=seeds, cpu=pinning.describe(),
                           teachers={n: t[0].to_json() for n, t in teachers.items()},
                           students={n: {s: r.to_json() for s, r in rs.items()}
                                     for n, rs in students.items()}), f, indent=1)
        console.print('\n'.join(lines))
    return dict(report=report, results=results_json)


if __name__ == '__main__':
    main()
