# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""One stage of the demo: train a config with ``tools/train.py``, test it with
``tools/test.py``, and collect what the report needs.

The stage calls the tools' own ``build_runner`` / ``main`` with a command line, exactly
what ``python tools/train.py CONFIG --work-dir ... --cfg-options ...`` does, in this
process (importing mmdet, mmseg and torch once for the whole demo).
"""
import gc
import json
import os
import os.path as osp
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence

from mmengine.runner import find_latest_checkpoint

from .console import Console, ProgressHook
from .paths import load_tool


@dataclass
class StageResult:
    """What one trained-and-tested run produced.

    Attributes:
        task, role, seed: which run (``role`` in :data:`demo.tasks.ROLES`).
        config: the demo config trained.
        work_dir: its work directory (logs, checkpoint, ``test/``).
        checkpoint: the final checkpoint.
        metrics: the evaluator's output on the held-out split (e.g. ``coco/bbox_mAP``).
        train_seconds, test_seconds: wall-clock time of training and of testing.
        iterations: training iterations run.
        num_params: parameters of the trained model (the student of a distiller).
        losses: the logged training losses, one dict per logging step (with ``step``).
        log_file: everything the runners printed.
        cached: True when the run was loaded from the teacher cache.
    """

    task: str
    role: str
    seed: int
    config: str
    work_dir: str
    checkpoint: str
    metrics: Dict[str, float]
    train_seconds: float
    test_seconds: float
    iterations: int
    num_params: int
    losses: List[Dict[str, float]] = field(default_factory=list)
    log_file: str = ''
    cached: bool = False

    def to_json(self, base_dir: Optional[str] = None) -> Dict:
        """A JSON-ready dict; paths relative to ``base_dir`` when given."""
        data = asdict(self)
        if base_dir is not None:
            for key in ('work_dir', 'checkpoint', 'log_file'):
                if data[key]:
                    data[key] = osp.relpath(data[key], base_dir)
        return data

    @classmethod
    def from_json(cls, data: Dict, base_dir: Optional[str] = None) -> 'StageResult':
        data = dict(data)
        if base_dir is not None:
            for key in ('work_dir', 'checkpoint', 'log_file'):
                if data.get(key):
                    data[key] = osp.normpath(osp.join(base_dir, data[key]))
        return cls(**data)


def read_losses(scalars_file: str) -> List[Dict[str, float]]:
    """Training-loss entries of mmengine's ``vis_data/scalars.json``."""
    losses = []
    if not osp.isfile(scalars_file):
        return losses
    with open(scalars_file, encoding='utf-8') as f:
        for line in f:
            entry = json.loads(line)
            values = {k: float(v) for k, v in entry.items() if 'loss' in k}
            if values and 'step' in entry:
                values['step'] = int(entry['step'])
                losses.append(values)
    return losses


def _float_metrics(metrics: Dict) -> Dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}


def run_stage(task: str, role: str, seed: int, config: str, work_dir: str,
              options: Sequence[str], test_options: Sequence[str], console: Console,
              router) -> StageResult:
    """Train ``config`` into ``work_dir``, then evaluate its last checkpoint.

    Args:
        task, role, seed: recorded in the result (``seed`` must already be in
            ``options`` as ``randomness.seed=...``).
        config: config file.
        work_dir: the run's work directory (``--work-dir``).
        options: ``--cfg-options`` for both training and testing.
        test_options: extra ``--cfg-options`` for testing only.
        console: progress output.
        router: the demo's :class:`~demo.console.OutputRouter` pair; the
            runners' own output goes to ``<work_dir>/demo_stage.log``.
    """
    os.makedirs(work_dir, exist_ok=True)
    log_file = osp.join(work_dir, 'demo_stage.log')
    # Visualizers are process-wide singletons by name: one name per runner.
    name = f'demo_{task}_{role}_seed{seed}_{osp.basename(work_dir)}_{time.time_ns()}'
    with router.to_file(log_file):
        start = time.monotonic()
        runner = load_tool('train').build_runner(
            [config, '--work-dir', work_dir, '--cfg-options', *options,
             f'visualizer.name={name}_train'])
        runner.register_hook(ProgressHook(console))
        runner.train()
        train_seconds = time.monotonic() - start
        model = getattr(runner.model, 'module', runner.model)
        model = getattr(model, 'student', model)
        num_params = sum(p.numel() for p in model.parameters())
        iterations = runner.iter
        losses = read_losses(osp.join(runner.log_dir, 'vis_data', 'scalars.json'))
        del runner, model
        gc.collect()
        checkpoint = find_latest_checkpoint(work_dir)
        if checkpoint is None:
            raise RuntimeError(f'training {config} wrote no checkpoint into {work_dir}')

        console.detail(f'testing {osp.basename(checkpoint)} on the held-out split')
        start = time.monotonic()
        metrics = load_tool('test').main(
            [config, checkpoint, '--work-dir', osp.join(work_dir, 'test'), '--cfg-options',
             *options, *test_options, f'visualizer.name={name}_test'])
        test_seconds = time.monotonic() - start
        gc.collect()
    return StageResult(task=task, role=role, seed=seed, config=config, work_dir=work_dir,
                       checkpoint=checkpoint, metrics=_float_metrics(metrics or {}),
                       train_seconds=train_seconds, test_seconds=test_seconds,
                       iterations=iterations, num_params=num_params, losses=losses,
                       log_file=log_file)
