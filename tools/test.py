# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Evaluate a checkpoint. On a distillation config this evaluates the student."""
import argparse
import os
from typing import Dict, List, Optional

from mmengine.config import DictAction
from mmengine.model import is_model_wrapper
from mmengine.registry import RUNNERS
from mmengine.runner import Runner
from torch import nn

# Importing mmdist registers the `mmdist::` config scope before any config is parsed.
from mmdist.utils import (load_run_config, setup_cpu_distributed, shutdown_distributed,
                          validate_checkpoint)
from mmdist.utils.checkpoint import CheckpointError, open_checkpoint
from mmdist.utils.checkpoint_fit import checkpoint_state, fit_model
from mmdist.utils.launch import explain_collective_timeout


def parse_args(argv: Optional[List[str]] = None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a model with mmdist')
    parser.add_argument('config', help='test config file path')
    parser.add_argument(
        'checkpoint',
        help='checkpoint file or URL; on a distillation config also a plain (e.g. exported) '
        'student checkpoint')
    parser.add_argument('--work-dir', help='the dir to save the evaluation results')
    parser.add_argument('--out', help='dump predictions to this pickle file')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. test_dataloader.batch_size=2')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def check_checkpoint_fits(model: nn.Module, checkpoint: str) -> None:
    """The test checkpoint must hold every tensor of the model tested (of a distiller: its
    student, from a distillation or a plain student checkpoint), with the same shapes."""
    if is_model_wrapper(model):
        model = model.module
    fit, tested = fit_model(model, checkpoint_state(open_checkpoint(checkpoint)))
    if fit.missing or fit.mismatched:
        raise CheckpointError(f'checkpoint: {checkpoint!r} does not fit the model to test '
                              f'({tested}): {fit.describe()}')


def build_runner(argv: Optional[List[str]] = None) -> Runner:
    """Parse the command line and build the test runner."""
    args = parse_args(argv)
    cfg = load_run_config(args.config, args.work_dir, args.launcher, args.cfg_options)
    validate_checkpoint(args.checkpoint, 'checkpoint')
    cfg.load_from = args.checkpoint

    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError('--out must be a .pkl or .pickle file')
        cfg.test_evaluator = [cfg.test_evaluator] if isinstance(
            cfg.test_evaluator, dict) else list(cfg.test_evaluator)
        cfg.test_evaluator.append(dict(type='DumpResults', out_file_path=args.out))

    setup_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    check_checkpoint_fits(runner.model, args.checkpoint)
    return runner


def main(argv: Optional[List[str]] = None) -> Dict:
    # A rank that hangs makes the others' next collective fail after env_cfg.dist_cfg.timeout:
    # say which setting expired.
    with explain_collective_timeout():
        return build_runner(argv).test()


if __name__ == '__main__':
    finished = False
    try:
        main()
        finished = True
    finally:
        shutdown_distributed(wait_for_ranks=finished)
