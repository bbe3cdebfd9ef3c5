# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""mmdist: DIST knowledge distillation for OpenMMLab detectors and segmentors.

Components register lazily (``type='mmdist.<Name>'`` imports them on first use).
Importing ``mmdist`` itself makes the ``mmdist::`` config scope resolvable and installs
the checkpoint loading policy (``weights_only=True`` for local and URL checkpoints, with
the types mmengine checkpoints need allow-listed; see ``mmdist.utils.checkpoint``).
"""
from mmengine.config.utils import MODULE2PACKAGE

from .utils.checkpoint import install_checkpoint_policy
from .version import __version__

# mmengine resolves `_base_ = ['mmdist::...']` only for scopes it lists here.
MODULE2PACKAGE.setdefault('mmdist', 'mmdist')
install_checkpoint_policy()

__all__ = ['__version__']
