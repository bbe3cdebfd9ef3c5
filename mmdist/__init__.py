# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""mmdist: DIST knowledge distillation for OpenMMLab detectors and segmentors.

Components register lazily (``type='mmdist.<Name>'`` imports them on first use).
Importing ``mmdist`` itself makes the ``mmdist::`` config scope resolvable and installs
the checkpoint loading policy (``weights_only=True`` for every checkpoint mmengine loads,
with the types mmengine checkpoints need allow-listed; see ``mmdist.utils.checkpoint``).
It does not import mmdet, mmseg or mmpretrain: ``from mmdist import DISTLoss`` (and the
other names of :data:`LAZY_EXPORTS`) imports ``mmdist.models`` on first use.
"""
import importlib

from mmengine.config.utils import MODULE2PACKAGE

from .utils.checkpoint import install_checkpoint_policy
from .version import __version__

# mmengine resolves `_base_ = ['mmdist::...']` only for scopes it lists here.
MODULE2PACKAGE.setdefault('mmdist', 'mmdist')
install_checkpoint_policy()

#: ``mmdist.<name>`` -> the module defining it, imported on first access.
LAZY_EXPORTS = {
    'DISTLoss': 'mmdist.models.losses',
    'KDLoss': 'mmdist.models.losses',
    'DetectionDistiller': 'mmdist.models.distillers',
    'SegmentationDistiller': 'mmdist.models.distillers',
    'ClassificationDistiller': 'mmdist.models.distillers',
}


def __getattr__(name: str):
    if name in LAZY_EXPORTS:
        return getattr(importlib.import_module(LAZY_EXPORTS[name]), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


__all__ = ['__version__', *LAZY_EXPORTS]
