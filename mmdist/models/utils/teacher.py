# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Build a frozen teacher from a config (path, ``pkg::`` path or dict) and a checkpoint."""
import logging
import os.path as osp
from typing import Optional, Union

from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import load_checkpoint
from torch import nn

from mmdist.registry import MODELS
from mmdist.utils.checkpoint import CheckpointError
from mmdist.utils.checkpoint_fit import MIN_FIT, fit_checkpoint

ConfigSource = Union[str, dict, Config, ConfigDict]

#: ``teacher_ckpt`` value that keeps the teacher's random initial weights on purpose (tests,
#: smoke runs). ``teacher_ckpt=None`` is refused by the distillers: a forgotten checkpoint
#: must not silently distil from a random teacher.
RANDOM_TEACHER = 'random-init'


def load_teacher_config(teacher_cfg: ConfigSource,
                        cfg_options: Optional[dict] = None,
                        key: str = 'teacher_cfg') -> Config:
    """Load the teacher's full config.

    Args:
        teacher_cfg: a config file path, an ``mmdet::...``/``mmseg::...``/``mmdist::...``
            package path (resolved like ``_base_``), or a config dict holding ``model``.
        cfg_options: overrides merged with :meth:`Config.merge_from_dict`, e.g.
            ``{'model.backbone.init_cfg': None}``.
        key: config key named in error messages.

    Returns:
        The loaded :class:`Config`.
    """
    if isinstance(teacher_cfg, (dict, ConfigDict, Config)):
        cfg = teacher_cfg if isinstance(teacher_cfg, Config) else Config(dict(teacher_cfg))
        cfg = cfg.copy()
    elif isinstance(teacher_cfg, str):
        if '::' in teacher_cfg:
            # Config.fromfile does not resolve package scopes; a one-line _base_ does.
            try:
                cfg = Config.fromstring(f'_base_ = [{teacher_cfg!r}]\n', '.py')
            except (FileNotFoundError, ValueError, AssertionError, ModuleNotFoundError) as err:
                raise FileNotFoundError(
                    f'{key}: cannot resolve package config {teacher_cfg!r}: {err}') from err
        else:
            if not osp.isfile(teacher_cfg):
                raise FileNotFoundError(f'{key}: config file {teacher_cfg!r} does not exist')
            cfg = Config.fromfile(teacher_cfg)
    else:
        raise TypeError(f'{key} must be a config path or dict, got {type(teacher_cfg).__name__}')
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'model' not in cfg:
        raise KeyError(f'{key}: the teacher config has no `model` entry')
    # mmengine's Runner merges a top-level `data_preprocessor` into the model config
    # (mmpretrain configs keep the normalisation there); do the same for the teacher.
    if cfg.get('data_preprocessor') is not None and 'data_preprocessor' not in cfg.model:
        cfg.model.data_preprocessor = cfg.data_preprocessor
    return cfg


def check_teacher_ckpt(teacher_ckpt: Optional[str]) -> None:
    """A distiller's ``teacher_ckpt``: a path or URL, or :data:`RANDOM_TEACHER` (opt-in).

    Raises:
        ValueError: ``None`` (the teacher would keep random weights without anyone asking).
        TypeError: not a string.
    """
    if teacher_ckpt is None:
        raise ValueError(
            'teacher_ckpt: None would distil from a randomly initialised teacher; give the '
            f'teacher\'s checkpoint (path or URL), or teacher_ckpt={RANDOM_TEACHER!r} to use '
            'random teacher weights on purpose (tests, smoke runs)')
    if not isinstance(teacher_ckpt, str):
        raise TypeError(f'teacher_ckpt: expected a checkpoint path or URL (or '
                        f'{RANDOM_TEACHER!r}), got {type(teacher_ckpt).__name__}')


def build_teacher(teacher_cfg: ConfigSource,
                  teacher_ckpt: Optional[str],
                  cfg_options: Optional[dict] = None,
                  strict: bool = True) -> nn.Module:
    """Build the teacher in its config's default scope, load its weights, freeze it.

    Args:
        teacher_cfg: see :func:`load_teacher_config`.
        teacher_ckpt: local path or URL of the teacher checkpoint, loaded onto CPU.
            :data:`RANDOM_TEACHER` or ``None`` keep the initial weights and warn (only
            useful for tests; distillers accept only :data:`RANDOM_TEACHER`, see
            :func:`check_teacher_ckpt`).
        cfg_options: overrides of the teacher config.
        strict: if True, missing or unexpected keys in the checkpoint are an error;
            otherwise they are logged as warnings.

    Returns:
        The teacher in eval mode with ``requires_grad=False`` everywhere.
    """
    cfg = load_teacher_config(teacher_cfg, cfg_options)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope')):
        try:
            teacher = MODELS.build(cfg.model)
        except KeyError as err:
            message = err.args[0] if err.args else str(err)
            raise KeyError(f'teacher_cfg (its `model`): {message}') from err
    if teacher_ckpt is None or teacher_ckpt == RANDOM_TEACHER:
        print_log(f'teacher_ckpt={teacher_ckpt!r}: the teacher keeps the random weights its '
                  'constructor made (init_weights is not called)', 'current',
                  level=logging.WARNING)
    else:
        try:
            # mmdist's checkpoint policy: weights_only=True for every scheme; URLs are
            # downloaded with a timeout into a cache keyed by the URL, once per node.
            checkpoint = load_checkpoint(teacher, teacher_ckpt, map_location='cpu',
                                         strict=strict)
        except (FileNotFoundError, CheckpointError) as err:
            raise type(err)(f'teacher_ckpt: {err}') from err
        except RuntimeError as err:  # missing / unexpected keys with strict loading
            raise RuntimeError(
                f'teacher_ckpt: {teacher_ckpt!r} does not match the model of teacher_cfg '
                f'(set teacher_strict=False to load it anyway): {err}') from err
        fit = fit_checkpoint(teacher.state_dict(), checkpoint.get('state_dict', checkpoint))
        if len(fit.fitting) < MIN_FIT * fit.expected:  # teacher_strict=False, but too little
            raise CheckpointError(
                f'teacher_ckpt: {teacher_ckpt!r} does not fit the model of teacher_cfg even '
                f'with teacher_strict=False: {fit.describe()} (at least {MIN_FIT:.0%} must)')
    teacher.eval()
    teacher.requires_grad_(False)
    return teacher
