# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""One run of the study: train a config with the mmengine Runner, test it, cache it.

A run builds its runner as ``tools/train.py CONFIG --work-dir DIR --cfg-options ...``
does (mmdist's config loading, training hooks and checkpoint checks), in the calling
process, except that the config text the runner logs is not formatted with yapf (seconds
per run, most of a ``--tiny`` run); the same runner then runs its test loop on the
held-out split. A finished run writes ``entry.json`` into its work directory last; a later
study with the same key (config, options, data fingerprint, seed, teacher and mmdist
version) reuses it, so teachers are trained once and an interrupted study resumes where
it stopped.
"""
import argparse
import contextlib
import hashlib
import json
import os
import os.path as osp
import shutil
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Dict, Iterator, Optional, Sequence, Tuple

import torch
from mmengine.config import Config, DictAction
from mmengine.runner import Runner, find_latest_checkpoint

from demo.console import routed_output
from mmdist.utils import add_training_hooks, validate_run_checkpoints
from mmdist.utils.checkpoint import read_checkpoint, validate_checkpoint
from mmdist.version import __version__

ENTRY = 'entry.json'


def parse_options(options: Sequence[str]) -> Dict:
    """``--cfg-options`` strings (``key=value``) parsed as the tools parse them."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    return parser.parse_args(['--cfg-options', *options] if options else []).cfg_options


def load_config(config: str, work_dir: str, options: Sequence[str]) -> Config:
    """``config`` with ``options`` and ``work_dir`` applied, as tools/train.py loads it."""
    if not osp.isfile(config):
        raise FileNotFoundError(f'config file {config!r} does not exist')
    cfg = Config.fromfile(config)
    # No yapf formatting of the config text the runner logs and dumps (passing
    # format_python_code=False to fromfile is dropped by mmengine 0.10.7 for these configs).
    cfg = Config(cfg.to_dict(), cfg_text=cfg.text, filename=cfg.filename,
                 format_python_code=False)
    cfg.launcher = 'none'
    cfg.merge_from_dict(parse_options(options))
    cfg.work_dir = work_dir
    cfg.visualizer.name = f'ladder_{osp.basename(work_dir)}_{time.time_ns()}'
    return cfg


@lru_cache(maxsize=None)
def _resolved_config(config: str) -> str:
    """The config with every ``_base_`` merged, as sorted JSON (parsed once a process)."""
    return json.dumps(Config.fromfile(config).to_dict(),
                      sort_keys=True, default=str)


@dataclass
class RunResult:
    """What one trained-and-tested run produced.

    Attributes:
        role: ``'teacher'``, ``'student'`` or a method name (``'dist'``, ...).
        teacher: the ladder teacher of a distilled run (its own name for a teacher run).
        seed: ``randomness.seed`` of the run.
        key: cache key (see :func:`run_key`).
        metrics: the test evaluator's output on the held-out split.
        paired: student alone only: teacher name -> ``teacher_key``, ``metrics`` of the
            student tested next to that teacher (``mmdist.PairedTestLoop``) and its
            ``cpu_seconds``.
        train_seconds, test_seconds: wall-clock seconds (of the run that produced it).
        train_cpu_seconds, test_cpu_seconds: CPU seconds of the same (time spent waiting
            for a core does not count; a busy machine still makes each second slower).
        cached: True when loaded from an earlier study's ``entry.json``.
    """

    role: str
    teacher: Optional[str]
    seed: int
    key: str
    config: str
    work_dir: str
    checkpoint: str
    metrics: Dict[str, float]
    train_seconds: float
    test_seconds: float
    train_cpu_seconds: float
    test_cpu_seconds: float
    iterations: int
    num_params: int
    build_cpu_seconds: float = 0.0
    paired: Dict[str, Dict] = field(default_factory=dict)
    cached: bool = False

    def to_json(self) -> Dict:
        return asdict(self)


def run_key(config: str, options: Sequence[str], data_fingerprint: str, seed: int,
            cpu: Dict, teacher_key: str = '') -> str:
    """A short hash of everything that decides a run's result (paths excluded); ``cpu``:
    the CPU settings (:meth:`~mmdist.utils.cpu_determinism.CpuPinning.key`)."""
    payload = json.dumps(
        dict(config=_resolved_config(config), options=list(options),
             data=data_fingerprint, seed=seed, teacher=teacher_key, mmdist=__version__,
             cpu=cpu),
        sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def load_cached(work_dir: str, key: str) -> Optional[RunResult]:
    """The finished run in ``work_dir`` if its key is ``key`` and its checkpoint exists."""
    path = osp.join(work_dir, ENTRY)
    if not osp.isfile(path):
        return None
    with open(path, encoding='utf-8') as f:
        result = RunResult(**json.load(f))
    if result.key != key or not osp.isfile(result.checkpoint):
        return None
    result.cached = True
    return result


def store(result: RunResult) -> None:
    """Mark ``result`` complete (``entry.json`` in its work dir, written last)."""
    data = result.to_json()
    data['cached'] = False
    tmp = osp.join(result.work_dir, ENTRY + '.tmp')
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, osp.join(result.work_dir, ENTRY))


def _floats(metrics: Optional[Dict]) -> Dict[str, float]:
    return {k: float(v) for k, v in (metrics or {}).items() if isinstance(v, (int, float))}


@contextlib.contextmanager
def _logged(work_dir: str) -> Iterator[None]:
    """Send everything printed inside the block to ``<work_dir>/run.log``."""
    os.makedirs(work_dir, exist_ok=True)
    with routed_output() as router, router.to_file(osp.join(work_dir, 'run.log')):
        yield


class _Clock:
    """Wall-clock and CPU seconds (``time.process_time``: this process, all threads)."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.monotonic(), time.process_time()

    def split(self) -> Tuple[float, float]:
        wall, cpu = time.monotonic(), time.process_time()
        spent = (wall - self.wall, cpu - self.cpu)
        self.wall, self.cpu = wall, cpu
        return spent


def train_and_test(config: str, work_dir: str, options: Sequence[str]) -> Dict:
    """Train ``config`` into a fresh ``work_dir`` and test the trained model.

    Args:
        config: the config file.
        work_dir: the run's work directory (emptied first: an unfinished earlier attempt
            with the same key); the runner's output goes to ``<work_dir>/run.log``.
        options: ``--cfg-options`` (data paths, seed, teacher, schedule).

    Returns:
        ``metrics``, ``checkpoint``, ``train_seconds``, ``test_seconds``,
        ``train_cpu_seconds``, ``test_cpu_seconds``, ``build_cpu_seconds`` (loading the
        config and building the runner: part of the training time), ``iterations`` and
        ``num_params`` (of the student of a distiller).
    """
    if osp.isdir(work_dir):
        shutil.rmtree(work_dir)
    with _logged(work_dir):
        clock = _Clock()
        cfg = load_config(config, work_dir, options)
        add_training_hooks(cfg)
        validate_run_checkpoints(cfg)
        runner = Runner.from_cfg(cfg)
        build_seconds, build_cpu_seconds = clock.split()
        runner.train()
        train_seconds, train_cpu_seconds = clock.split()
        train_seconds += build_seconds
        train_cpu_seconds += build_cpu_seconds
        model = getattr(runner.model, 'module', runner.model)
        num_params = sum(p.numel() for p in getattr(model, 'student', model).parameters())
        metrics = runner.test()
        test_seconds, test_cpu_seconds = clock.split()
        iterations = runner.iter
        del runner, model
    checkpoint = find_latest_checkpoint(work_dir)
    if checkpoint is None:
        raise RuntimeError(f'training {config} wrote no checkpoint into {work_dir}')
    return dict(metrics=_floats(metrics), checkpoint=checkpoint, train_seconds=train_seconds,
                test_seconds=test_seconds, train_cpu_seconds=train_cpu_seconds,
                test_cpu_seconds=test_cpu_seconds, build_cpu_seconds=build_cpu_seconds,
                iterations=iterations, num_params=num_params)


def train_or_reuse(role: str, config: str, parent: str, options: Sequence[str],
                   key_options: Sequence[str], data_fingerprint: str, cpu: Dict,
                   seed: int = 0, teacher_key: str = '') -> RunResult:
    """Train ``config`` alone into ``<parent>/<role>-<key>`` (and test it), unless the
    finished run with the same key is there; the run, as stored.

    Args:
        role: the run's name (spaces become ``_`` in its folder name).
        options: every ``--cfg-options`` of the run (data paths, schedule, teacher).
        key_options: the options that decide the result (not the paths), for the key.
        data_fingerprint, cpu, seed, teacher_key: as :func:`run_key`.
    """
    key = run_key(config, key_options, data_fingerprint, seed, cpu, teacher_key)
    work_dir = osp.join(parent, f'{role.replace(" ", "_")}-{key}')
    cached = load_cached(work_dir, key)
    if cached is not None:
        return cached
    result = RunResult(role=role, teacher=None, seed=seed, key=key, config=config,
                       work_dir=work_dir, **train_and_test(config, work_dir, options))
    store(result)
    return result


def as_distiller_checkpoint(checkpoint: str, path: str) -> str:
    """Write the plain student ``checkpoint``'s weights as a distiller's (``student.``
    prefix), so that a distiller config can test it next to a teacher."""
    state = read_checkpoint(checkpoint)['state_dict']
    torch.save(dict(meta=dict(source=osp.basename(checkpoint)),
                    state_dict={f'student.{k}': v for k, v in state.items()}), path)
    return path


def test_only(config: str, checkpoint: str, work_dir: str,
              options: Sequence[str]) -> Dict[str, float]:
    """The metrics of ``tools/test.py CONFIG CHECKPOINT --work-dir ... --cfg-options ...``
    (and ``cpu_seconds``: the CPU time it took)."""
    with _logged(work_dir):
        clock = _Clock()
        cfg = load_config(config, work_dir, options)
        validate_checkpoint(checkpoint, 'checkpoint')
        cfg.load_from = checkpoint
        metrics = _floats(Runner.from_cfg(cfg).test())
    return dict(metrics=metrics, cpu_seconds=clock.split()[1])
