# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Train a model (a distiller or a plain mmdet/mmseg model) from a config."""
import argparse
import os
from typing import List, Optional

from mmengine.config import DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

# Importing mmdist registers the `mmdist::` config scope before any config is parsed.
from mmdist.utils import (add_training_hooks, load_run_config, setup_cpu_distributed,
                          shutdown_distributed, validate_run_checkpoints)
from mmdist.utils.launch import explain_collective_timeout, prepare_exact_resume
from mmdist.utils.run_checkpoint import check_resume, check_run_checkpoint_fits


def parse_args(argv: Optional[List[str]] = None):
    parser = argparse.ArgumentParser(description='Train a model with mmdist')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp', action='store_true', help='enable automatic mixed precision training')
    parser.add_argument(
        '--auto-scale-lr', action='store_true', help='scale the lr with the total batch size')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint; with no path, from the latest checkpoint '
        'in the work dir')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. model.loss_cls.tau=2.0')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def build_runner(argv: Optional[List[str]] = None) -> Runner:
    """Parse the command line and build the training runner."""
    args = parse_args(argv)
    cfg = load_run_config(args.config, args.work_dir, args.launcher, args.cfg_options)

    if args.amp:
        optim_wrapper = cfg.optim_wrapper.type
        if optim_wrapper == 'AmpOptimWrapper':
            print('AMP training is already enabled in the config.')
        else:
            if optim_wrapper != 'OptimWrapper':
                raise ValueError('--amp needs optim_wrapper.type OptimWrapper or '
                                 f'AmpOptimWrapper, got {optim_wrapper!r}')
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'

    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise RuntimeError('--auto-scale-lr needs `auto_scale_lr.base_batch_size` in the '
                               'config')
        cfg.auto_scale_lr.enable = True

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    add_training_hooks(cfg)
    validate_run_checkpoints(cfg)
    check_resume(cfg)
    prepare_exact_resume(cfg)
    setup_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    # The model is built, nothing is loaded into it yet (the runner does that in train()).
    check_run_checkpoint_fits(runner.model, cfg)
    return runner


def main(argv: Optional[List[str]] = None) -> None:
    # A rank that hangs makes the others' next collective fail after env_cfg.dist_cfg.timeout
    # (gloo raises; NCCL's watchdog aborts the process): say which setting expired.
    with explain_collective_timeout():
        build_runner(argv).train()


if __name__ == '__main__':
    finished = False
    try:
        main()
        finished = True
    finally:
        shutdown_distributed(wait_for_ranks=finished)
