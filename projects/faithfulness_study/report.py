# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""The study's outputs: ``report.md`` (tables plus how they were made) and
``results.json`` (every metric of every run)."""
import datetime
import json
import os
import os.path as osp
import platform
from typing import Dict, List, Sequence

import torch

from mmdist.datasets import cityscapes_shapes_classes
from demo.console import format_duration
from .runner import StudyResult
from .table import markdown_table
from .variants import CUTMIX, INTRA_CLASS_THRESHOLD, KL_WEIGHT


def machine() -> str:
    """``'2 CPU cores, torch 2.x.y, Linux ...'``: where the numbers were measured."""
    return (f'{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), '
            f'torch {torch.__version__} with {torch.get_num_threads()} thread(s), '
            f'{platform.system()} {platform.release()}, Python {platform.python_version()}')


def _settings_lines() -> List[str]:
    return [f'- CutMix (study A): `mmdist.SegBatchCutMix` alpha={CUTMIX["alpha"]:g}, '
            f'prob={CUTMIX["prob"]:g} in `mmdist.BatchMixSegDataPreprocessor`',
            f'- DIST options (studies B-E; segmentation: decode and auxiliary loss alike; '
            f'detection: `loss_cls`): `kl_weight={KL_WEIGHT:g}`, '
            f'`intra_class_threshold={INTRA_CLASS_THRESHOLD:g}`',
            '- evaluation: `mmdist.PairedTestLoop`; segmentation: mmseg IoU (percent) and '
            '`mmdist.SegFaithfulnessMetric`; detection: mmdet `CocoMetric` (classwise) and '
            '`mmdist.DetFaithfulnessMetric` (defaults: pseudo boxes = teacher detections '
            'with score >= 0.5, D-ECE on detections with score >= 0.3, the demo configs\' '
            '`test_cfg`); fractions shown x100']


def study_lines(result: StudyResult) -> List[str]:
    """A study's section: title, provenance and table."""
    study = result.study
    rows = [result.teacher] + result.students
    seconds = sum(r.train_seconds + r.test_seconds for r in result.students)
    weights = ''
    if study.class_weights is not None:
        names = cityscapes_shapes_classes()[1:]
        weights = ' Class weights: ' + ', '.join(
            f'{n} {w:g}' for n, w in zip(names, study.class_weights)) + '.'
    return [f'## Study {study.name}: {study.title}', '',
            f'Data: `{result.data_root}` (fingerprint `{result.data_fingerprint[:16]}`).'
            f'{weights} '
            f'Teacher: `{result.teacher_source}`'
            + (' (cached)' if result.teacher.cached else ' (trained by this run)')
            + f', trained in {format_duration(result.teacher.train_seconds)}. '
            f'Students: {format_duration(seconds)} of training and testing.', '',
            *markdown_table(study, rows), '']


def write_outputs(out_dir: str, results: Sequence[StudyResult], command: str,
                  wall_seconds: float, tiny: bool, cpu: str) -> Dict[str, str]:
    """Write ``report.md`` and ``results.json`` into ``out_dir``; returns their paths.
    ``cpu``: the CPU settings' line (:meth:`~mmdist.utils.cpu_determinism.CpuPinning.
    describe`)."""
    date = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    lines = ['# Faithfulness study on the demo data', '',
             f'Command: `{command}`' + (' (--tiny: the numbers mean nothing)' if tiny else ''),
             f'Date: {date}. Machine: {machine()}. Wall time: '
             f'{format_duration(wall_seconds)}.', '', cpu, '', *_settings_lines(), '']
    for result in results:
        lines += study_lines(result)
    report = osp.join(out_dir, 'report.md')
    with open(report, 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines))
    data = dict(command=command, date=date, machine=machine(), cpu=cpu, tiny=tiny,
                wall_seconds=wall_seconds, studies={
                    r.study.name: dict(
                        title=r.study.title, data_root=r.data_root,
                        class_weights=r.study.class_weights,
                        data_fingerprint=r.data_fingerprint,
                        teacher_checkpoint=r.teacher_checkpoint,
                        teacher_source=r.teacher_source,
                        columns=[dict(key=c.key, label=c.label, scale=c.scale)
                                 for c in r.study.columns],
                        teacher=r.teacher.to_json(),
                        students=[s.to_json() for s in r.students])
                    for r in results})
    path = osp.join(out_dir, 'results.json')
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(data, f, indent=1)
    return dict(report=report, results=path)
