# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""The checkpoint a training run starts from (``load_from`` or ``--resume``), checked by
tools/train.py before anything is trained or loaded:

* :func:`check_resume` (before the runner is built): a resumed checkpoint must be one a
  training run wrote (not weights only, no code for mmengine to run) and must not lie past ``train_cfg.max_iters`` /
  ``max_epochs``; each compared setting changed since it was written is a warning saying
  what resuming does with the new value (:mod:`mmdist.utils.config_changes`).
* :func:`check_run_checkpoint_fits` (once the model is built, before the checkpoint is
  loaded into it): resuming needs every tensor of the model; ``load_from`` needs
  :data:`~mmdist.utils.checkpoint_fit.MIN_FIT` of them (of a distiller: of its student)
  and warns naming the modules a partial fit leaves at their initial weights.
"""
import logging

from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from torch import nn

from .checkpoint import CheckpointError, open_checkpoint
from .checkpoint_fit import (MIN_FIT, checkpoint_state, fit_checkpoint, fit_model,
                             modules_left_at_init)
from .config_changes import COMPARED, UNREADABLE, read_config_text, resume_config_changes
from .launch import RunCheckpoint, find_run_checkpoint, is_epoch_based


def _warn(message: str) -> None:
    print_log(message, 'current', logging.WARNING)


def check_training_checkpoint(checkpoint: dict, source: RunCheckpoint) -> None:
    """A resumed checkpoint must hold a training run's state (what mmengine's resume reads:
    ``message_hub``, ``meta['iter']``, ``meta['epoch']``), not only weights, and no
    ``meta['config']`` (mmengine's resume executes it)."""
    meta = checkpoint.get('meta')
    meta = meta if isinstance(meta, dict) else {}
    lacking = [name for name, present in (('message_hub', 'message_hub' in checkpoint),
                                          ("meta['iter']", 'iter' in meta),
                                          ("meta['epoch']", 'epoch' in meta)) if not present]
    if lacking:
        raise CheckpointError(
            f'{source.key}: {source.path!r} holds weights only (no {", ".join(lacking)}), '
            'e.g. an exported or plain student checkpoint; --resume continues a run from a '
            'checkpoint its training wrote (iter_N.pth, epoch_N.pth). To start a new run '
            f'from these weights (new optimizer and schedule), use --cfg-options '
            f'load_from={source.path}')
    if 'config' in meta:
        # mmengine's Runner.resume passes meta['config'] to Config.fromstring, which runs it.
        raise CheckpointError(
            f"{source.key}: {source.path!r} has meta['config'], a config text that mmengine's "
            'resume would run as Python code (mmengine itself writes meta[\'cfg\'], which is '
            'only read here): refused. If you trust the file, delete that key from its meta')


def check_resume_position(cfg: Config, meta: dict, source: RunCheckpoint) -> str:
    """The checkpoint's iteration (epoch, in an epoch-based run) must not exceed
    ``train_cfg.max_iters`` (``max_epochs``). Returns it for messages: ``'iteration 2'``."""
    setting, unit, done = (('max_epochs', 'epoch', meta['epoch']) if is_epoch_based(cfg) else
                           ('max_iters', 'iteration', meta['iter']))
    total = (cfg.get('train_cfg', None) or {}).get(setting, None)
    if total is not None and total < done:
        raise ValueError(
            f'train_cfg.{setting}={total} is below the {unit} of the checkpoint to resume '
            f'({done}, {source.key} {source.path!r}): nothing would be trained. Set '
            f'train_cfg.{setting} above {done}, or resume from an earlier checkpoint')
    if total == done:
        _warn(f'{source.key}: {source.path!r} was written at the end of training ({unit} '
              f'{done} of train_cfg.{setting}={total}): nothing is left to train')
    return f'{unit} {done}'


def warn_config_changes(cfg: Config, meta: dict, source: RunCheckpoint, position: str) -> None:
    """A warning for each compared setting of ``cfg`` that differs from the config stored
    in the checkpoint (``meta['cfg']``), naming the key, old -> new value and its effect."""
    text = meta.get('cfg')
    try:
        if not isinstance(text, str):
            raise SyntaxError("no meta['cfg']")
        stored = read_config_text(text)
    except SyntaxError as err:
        _warn(f'{source.key}: the config of the checkpoint cannot be read ({err}): settings '
              'changed since it was written are not checked')
        return
    unreadable = [entry for entry in COMPARED if stored.get(entry) is UNREADABLE]
    if unreadable:
        _warn(f'{source.key}: the checkpoint\'s config holds values other than literals in '
              f'{", ".join(unreadable)}: changes to them since it was written are not checked')
    for change in resume_config_changes(stored, cfg.to_dict(), position):
        _warn(f'{source.key} from {position}: {change.describe()}')


def check_resume(cfg: Config) -> None:
    """Check the checkpoint a resumed run starts from, before the runner is built (see the
    module docstring). A no-op unless the run resumes from a checkpoint."""
    source = find_run_checkpoint(cfg)
    if source is None or not source.resume:
        return
    checkpoint = open_checkpoint(source.path)
    check_training_checkpoint(checkpoint, source)
    position = check_resume_position(cfg, checkpoint['meta'], source)
    warn_config_changes(cfg, checkpoint['meta'], source, position)


def check_run_checkpoint_fits(model: nn.Module, cfg: Config, limit: int = 8) -> None:
    """Check that the run's checkpoint fits ``model`` (the runner's, before it loads it).

    Raises:
        CheckpointError: resumed from a checkpoint that misses a tensor of the model, has
            one of another shape or one the model lacks; or ``load_from`` fits less than
            ``MIN_FIT`` of the model (of a distiller: of its student).
    """
    source = find_run_checkpoint(cfg)
    if source is None:
        return
    if is_model_wrapper(model):
        model = model.module
    state = checkpoint_state(open_checkpoint(source.path))
    if source.resume:
        fit = fit_checkpoint(model.state_dict(), state)
        if fit.missing or fit.mismatched or fit.unexpected:
            raise CheckpointError(
                f'{source.key}: {source.path!r} does not fit the model to resume '
                f'({type(model).__name__}): {fit.describe()}. Resuming needs every tensor of '
                'the model, with its shape (the optimizer state is per tensor): resume from '
                "a checkpoint of this config's run, or start a new run from the tensors that "
                f'fit with --cfg-options load_from={source.path}')
        return
    fit, target = fit_model(model, state)
    if len(fit.fitting) < MIN_FIT * fit.expected:
        raise CheckpointError(
            f'{source.key}: {source.path!r} does not fit {target}: {fit.describe()} (at '
            f'least {MIN_FIT:.0%} must). Use a checkpoint of this model')
    if fit.missing or fit.mismatched:
        left = modules_left_at_init(fit)
        more = f' (+{len(left) - limit} more)' if len(left) > limit else ''
        _warn(f'{source.key}: {source.path!r} fits {len(fit.fitting)} of {fit.expected} '
              f'tensors of {target}; left at their initial weights: '
              f'{", ".join(left[:limit])}{more} ({fit.describe()})')
