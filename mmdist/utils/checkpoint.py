# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Checkpoint loading policy: ``weights_only=True``, clear errors, explicit pickle opt-in.

* mmengine 0.10.7 calls ``torch.load`` without ``weights_only``; since torch 2.6 that means
  ``weights_only=True``, which refuses the non-tensor objects a training checkpoint holds
  (the message hub's ``HistoryBuffer`` with numpy arrays).
  :func:`allow_mmengine_checkpoint_types` allow-lists exactly those types.
* mmengine downloads ``http(s)://`` checkpoints with ``torch.hub.load_state_dict_from_url``,
  whose ``weights_only`` defaults to False (full pickle). :func:`install_checkpoint_policy`
  replaces mmengine's local and http(s) loaders by :func:`read_checkpoint`, so teacher
  checkpoints, ``load_from`` and ``resume`` all load with ``weights_only=True`` onto the
  requested device, and a missing, unreadable or non-checkpoint file gives a clear error.
* Legacy checkpoints with other pickled objects load only when the user opts in with the
  environment variable ``MMDIST_ALLOW_PICKLE_CHECKPOINTS=1``; each such load warns.
"""
import collections
import importlib
import os
import os.path as osp
import pickle
import warnings
from typing import Any, List, Optional

import numpy as np
import torch
from mmengine.dist import get_dist_info
from mmengine.logging import print_log
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

#: Set to 1 to load checkpoints with full pickle (arbitrary code execution: trusted files only).
ALLOW_PICKLE_ENV = 'MMDIST_ALLOW_PICKLE_CHECKPOINTS'

#: HistoryBuffer pickles its statistic methods as ``getattr(HistoryBuffer, name)``.
HISTORY_BUFFER_STATISTICS = ('min', 'max', 'current', 'mean')


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and the reason."""


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


def pickle_allowed() -> bool:
    """Whether the user opted in to full-pickle loading (``MMDIST_ALLOW_PICKLE_CHECKPOINTS``)."""
    return os.environ.get(ALLOW_PICKLE_ENV, '0').lower() in ('1', 'true', 'yes')


def read_checkpoint(path: str, map_location: Optional[str] = 'cpu', mmap: bool = False) -> dict:
    """Load a local checkpoint with ``weights_only=True`` (unless opted out) and check it.

    Args:
        path: local file.
        map_location: as :func:`torch.load`.
        mmap: memory-map the tensors (cheap validation of large files; zip format only).

    Returns:
        The checkpoint dict.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: unreadable, not a checkpoint dict, or holding pickled objects
            outside the allow-list (the message says how to opt in).
    """
    path = osp.expanduser(path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path!r} does not exist')
    weights_only = not pickle_allowed()
    if not weights_only:
        warnings.warn(f'{ALLOW_PICKLE_ENV}=1: loading {path!r} with full pickle, which can run '
                      'arbitrary code; do this only for files you trust')
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=weights_only,
                                mmap=mmap)
    except pickle.UnpicklingError as err:
        refused_objects = ('Unsupported global', 'allowlisted via `add_safe_globals`')
        if weights_only and any(marker in str(err) for marker in refused_objects):
            reason = str(err).split('WeightsUnpickler error:')[-1].strip().splitlines()[0]
            raise CheckpointError(
                f'checkpoint {path!r} contains pickled objects outside the weights_only '
                f'allow-list ({reason}). If it is a legacy checkpoint you trust, load it with '
                f'{ALLOW_PICKLE_ENV}=1 (full pickle; see docs/run_lifecycle.md)') from err
        raise CheckpointError(f'{path!r} is not a readable PyTorch checkpoint: {err}') from err
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(f'{path!r} is not a readable PyTorch checkpoint: {err}') from err
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f'{path!r} holds a {type(checkpoint).__name__}, not a '
                              'checkpoint dict (with a state_dict)')
    return checkpoint


def validate_checkpoint(path: str, key: str) -> None:
    """Fail before training if ``path`` (from config key ``key``) is not a usable checkpoint."""
    try:
        try:
            read_checkpoint(path, map_location='cpu', mmap=True)
        except CheckpointError as err:
            if 'mmap' not in str(err):
                raise
            read_checkpoint(path, map_location='cpu')  # legacy (non-zip) format
    except (FileNotFoundError, CheckpointError) as err:
        raise type(err)(f'{key}: {err}') from err


def load_from_local(filename: str, map_location=None) -> dict:
    """mmengine scheme loader for local paths (replaces mmengine's)."""
    return read_checkpoint(filename, map_location=map_location)


def load_from_http(filename: str, map_location=None) -> dict:
    """mmengine scheme loader for http(s) URLs: download once (rank 0), then read safely."""
    model_dir = osp.join(torch.hub.get_dir(), 'checkpoints')
    cached = osp.join(model_dir, osp.basename(filename.split('?')[0]))
    rank, world_size = get_dist_info()
    if rank == 0 and not osp.isfile(cached):
        os.makedirs(model_dir, exist_ok=True)
        print_log(f'downloading {filename} to {cached}', 'current')
        torch.hub.download_url_to_file(filename, cached, progress=False)
    if world_size > 1:
        torch.distributed.barrier()
    return read_checkpoint(cached, map_location=map_location)


def install_checkpoint_policy() -> None:
    """Make mmengine load local and http(s) checkpoints through :func:`read_checkpoint`."""
    allow_mmengine_checkpoint_types()
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)
    CheckpointLoader.register_scheme(prefixes=('http://', 'https://'), loader=load_from_http,
                                     force=True)
