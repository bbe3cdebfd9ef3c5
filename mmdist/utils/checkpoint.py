# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Load mmengine checkpoints with ``torch.load(weights_only=True)`` on torch >= 2.6.

mmengine 0.10.7 calls ``torch.load`` without ``weights_only``; since torch 2.6 that means
``weights_only=True``, which refuses the non-tensor objects a training checkpoint holds
(the message hub's ``HistoryBuffer`` with numpy arrays). Rather than switching the safe
loader off, :func:`allow_mmengine_checkpoint_types` allow-lists exactly those types, so
mmengine's own loader (``load_from``, ``resume``, teacher checkpoints) works and any other
pickled object is still refused.
"""
import collections
import importlib
import pickle
from typing import Any, List

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer

#: HistoryBuffer pickles its statistic methods as ``getattr(HistoryBuffer, name)``.
HISTORY_BUFFER_STATISTICS = ('min', 'max', 'current', 'mean')


def history_buffer_getattr(owner: Any, name: str) -> Any:
    """Stand-in for ``builtins.getattr`` while unpickling: HistoryBuffer statistics only."""
    if owner is HistoryBuffer and name in HISTORY_BUFFER_STATISTICS:
        return getattr(owner, name)
    raise pickle.UnpicklingError(
        f'refusing getattr({owner!r}, {name!r}) in a checkpoint: only '
        f'HistoryBuffer.{{{", ".join(HISTORY_BUFFER_STATISTICS)}}} are allowed')


def _numpy_multiarray():
    """numpy's ``multiarray`` module (``numpy._core`` in numpy 2, ``numpy.core`` before)."""
    try:
        return importlib.import_module('numpy._core.multiarray')
    except ImportError:
        return importlib.import_module('numpy.core.multiarray')


def mmengine_checkpoint_types() -> List:
    """The globals an mmengine training checkpoint contains besides tensors."""
    multiarray = _numpy_multiarray()
    dtype_classes = [getattr(np.dtypes, name) for name in dir(np.dtypes)
                     if name.endswith('DType')]
    return [
        HistoryBuffer,
        (history_buffer_getattr, 'builtins.getattr'),
        collections.Counter,
        np.ndarray,
        np.dtype,
        (multiarray._reconstruct, 'numpy.core.multiarray._reconstruct'),
        (multiarray.scalar, 'numpy.core.multiarray.scalar'),
        (multiarray._reconstruct, 'numpy._core.multiarray._reconstruct'),
        (multiarray.scalar, 'numpy._core.multiarray.scalar'),
    ] + dtype_classes


def allow_mmengine_checkpoint_types() -> None:
    """Add :func:`mmengine_checkpoint_types` to torch's ``weights_only`` allow-list."""
    torch.serialization.add_safe_globals(mmengine_checkpoint_types())
