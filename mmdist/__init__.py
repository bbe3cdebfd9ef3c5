# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""mmdist: DIST knowledge distillation for OpenMMLab detectors and segmentors.

Components register lazily (``type='mmdist.<Name>'`` imports them on first use).
Importing ``mmdist`` itself makes the ``mmdist::`` config scope resolvable and lets
``torch.load(weights_only=True)`` read mmengine checkpoints (see ``mmdist.utils.checkpoint``).
"""
from mmengine.config.utils import MODULE2PACKAGE

from .utils.checkpoint import allow_mmengine_checkpoint_types
from .version import __version__

# mmengine resolves `_base_ = ['mmdist::...']` only for scopes it lists here.
MODULE2PACKAGE.setdefault('mmdist', 'mmdist')
allow_mmengine_checkpoint_types()

__all__ = ['__version__']
