# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""mmdist: DIST knowledge distillation for OpenMMLab detectors and segmentors.

Components register lazily (``type='mmdist.<Name>'`` imports them on first use);
importing ``mmdist`` itself only makes the ``mmdist::`` config scope resolvable.
"""
from mmengine.config.utils import MODULE2PACKAGE

from .version import __version__

# mmengine resolves `_base_ = ['mmdist::...']` only for scopes it lists here.
MODULE2PACKAGE.setdefault('mmdist', 'mmdist')

__all__ = ['__version__']
