# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Checkpoint loading policy: ``weights_only=True``, clear errors, explicit pickle opt-in.

* mmengine 0.10.7 calls ``torch.load`` without ``weights_only``; since torch 2.6 that means
  ``weights_only=True``, which refuses the non-tensor objects a training checkpoint holds
  (the message hub's ``HistoryBuffer`` with numpy arrays).
  :func:`allow_mmengine_checkpoint_types` allow-lists exactly those types.
* Every checkpoint mmengine loads (``load_from``, resume, ``init_cfg=Pretrained``, mmdet's
  ``init_detector``, the teacher) goes through ``CheckpointLoader.load_checkpoint``, which
  picks a loader by scheme: local path, ``http(s)://``, ``torchvision://``,
  ``open-mmlab://``, ``mmcls://``, ``pavi://``, ``s3://``, ... Some of them end in a full
  unpickle (``torch.hub.load_state_dict_from_url`` passes ``weights_only=False``).
  :func:`install_checkpoint_policy` wraps that one entry point: while it runs,
  ``torch.load`` is :func:`policy_load` whatever scheme loader (or ``torch.hub``) calls it;
  mmengine's URL tables and torch hub's cache are used as they are.
* It also replaces mmengine's local and ``http(s)://`` loaders: a missing or unreadable
  file gives a clear error; a URL is downloaded with a bounded timeout
  (``MMDIST_DOWNLOAD_TIMEOUT``) into a cache keyed by the whole URL, the file name's
  SHA-256 suffix is checked as torch hub does, and each node downloads once (local rank 0)
  while its other ranks wait.
* Legacy checkpoints with other pickled objects load only when the user opts in with the
  environment variable ``MMDIST_ALLOW_PICKLE_CHECKPOINTS=1``; each such load warns.
"""
import collections
import contextlib
import importlib
import os
import os.path as osp
import pickle
import threading
import warnings
from typing import Any, Iterator, List, Optional

import numpy as np
import torch
from mmengine.dist import get_dist_info
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from .download import URL_PREFIXES, DownloadError, download_checkpoint, is_url, local_rank

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


# ----------------------------------------------------------------------------- torch.load
#: torch's own ``torch.load``; mmdist puts :func:`policy_load` in its place only while a
#: checkpoint loads through mmengine's ``CheckpointLoader`` (:func:`checkpoint_policy`).
_TORCH_LOAD = torch.load
#: ``.source``: the checkpoint (path, URL or scheme path) this thread is loading.
_loading = threading.local()
_swap_lock = threading.Lock()
_swap_depth = 0


def _describe(f: Any) -> str:
    """``'x.pth'``, or ``'torchvision://x' (read from '/cache/x.pth')`` for a scheme."""
    file = repr(os.fspath(f)) if isinstance(f, (str, os.PathLike)) else 'a stream'
    source = getattr(_loading, 'source', None)
    if source is None or file == repr(source):
        return file
    return f'{source!r} (read from {file})'


def _refused_object(message: str) -> Optional[str]:
    """The line of torch's weights_only error naming a refused object (a global or one of
    :func:`history_buffer_getattr`'s refusals); None for other errors (a corrupt file)."""
    for line in message.split('WeightsUnpickler error:')[-1].splitlines():
        line = line.strip()
        if 'GLOBAL' in line or line.startswith('refusing'):
            return line
    return None


def policy_load(f: Any, map_location: Any = None, pickle_module: Any = None, *,
                weights_only: Optional[bool] = None, mmap: Optional[bool] = None,
                **pickle_load_args) -> Any:
    """``torch.load`` under mmdist's policy, whatever ``weights_only`` the caller asked for.

    Loads with ``weights_only=True`` (the types of :func:`mmengine_checkpoint_types`
    allowed) unless the user opted in with ``MMDIST_ALLOW_PICKLE_CHECKPOINTS=1``; then with
    full pickle and a warning. Same arguments as :func:`torch.load`.

    Raises:
        CheckpointError: pickled objects outside the allow-list (the message says how to opt
            in), or not a readable PyTorch file; the message names the checkpoint.
    """
    name = _describe(f)
    safe = not pickle_allowed()
    if not safe:
        warnings.warn(f'{ALLOW_PICKLE_ENV}=1: loading {name} with full pickle, which can run '
                      'arbitrary code; do this only for files you trust')
    try:
        return _TORCH_LOAD(f, map_location=map_location,
                           pickle_module=None if safe else pickle_module, weights_only=safe,
                           mmap=mmap, **pickle_load_args)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as err:
        refused = _refused_object(str(err)) if safe else None
        if refused is not None:
            raise CheckpointError(
                f'checkpoint {name} contains pickled objects outside the weights_only '
                f'allow-list ({refused}). If it is a legacy checkpoint you trust, load it with '
                f'{ALLOW_PICKLE_ENV}=1 (full pickle; see docs/run_lifecycle.md)') from err
        raise CheckpointError(f'{name} is not a readable PyTorch checkpoint: {err}') from err
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(f'{name} is not a readable PyTorch checkpoint: {err}') from err


@contextlib.contextmanager
def checkpoint_policy(source: str) -> Iterator[None]:
    """While active, ``torch.load`` (called by anyone) is :func:`policy_load`.

    ``source`` names the checkpoint in error messages (the outermost one when nested).
    Other threads that call ``torch.load`` meanwhile get the policy too: stricter, never
    looser.
    """
    global _swap_depth
    previous = getattr(_loading, 'source', None)
    _loading.source = previous if previous is not None else source
    with _swap_lock:
        if _swap_depth == 0:
            torch.load = policy_load
        _swap_depth += 1
    try:
        yield
    finally:
        with _swap_lock:
            _swap_depth -= 1
            if _swap_depth == 0:
                torch.load = _TORCH_LOAD
        _loading.source = previous


def read_checkpoint(path: str, map_location: Optional[str] = 'cpu', mmap: bool = False) -> dict:
    """Load a local checkpoint with :func:`policy_load` and check that it is a dict.

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
    checkpoint = policy_load(path, map_location=map_location, mmap=mmap)
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f'{path!r} holds a {type(checkpoint).__name__}, not a '
                              'checkpoint dict (with a state_dict)')
    return checkpoint


def fetch_checkpoint(url: str) -> str:
    """:func:`~mmdist.utils.download.download_checkpoint`, failing with a CheckpointError."""
    try:
        return download_checkpoint(url)
    except DownloadError as err:
        raise CheckpointError(str(err)) from err


# ----------------------------------------------------------------------------- mmengine
def load_from_local(filename: str, map_location=None) -> dict:
    """mmengine scheme loader for local paths (replaces mmengine's)."""
    return read_checkpoint(filename, map_location=map_location)


def load_from_http(filename: str, map_location=None) -> dict:
    """mmengine scheme loader for ``http(s)://`` URLs (replaces mmengine's)."""
    return read_checkpoint(fetch_checkpoint(filename), map_location=map_location)


def open_checkpoint(path: str) -> dict:
    """Read checkpoint ``path`` (local file, URL or any mmengine scheme) under the policy;
    local files and downloads are memory-mapped where their format allows (cheap checks).

    Raises:
        FileNotFoundError, CheckpointError: as :func:`read_checkpoint` and
            :func:`fetch_checkpoint`.
    """
    if is_url(path):
        path = fetch_checkpoint(path)
    elif CheckpointLoader._get_checkpoint_loader(path) is not load_from_local:
        checkpoint = CheckpointLoader.load_checkpoint(path, map_location='cpu')
        if not isinstance(checkpoint, dict):
            raise CheckpointError(f'{path!r} holds a {type(checkpoint).__name__}, not a '
                                  'checkpoint dict (with a state_dict)')
        return checkpoint
    try:
        return read_checkpoint(path, map_location='cpu', mmap=True)
    except CheckpointError as err:
        if 'mmap' not in str(err):
            raise
        return read_checkpoint(path, map_location='cpu')  # legacy (non-zip) format


def validate_checkpoint(path: str, key: str) -> None:
    """Fail before training if ``path`` (from config key ``key``) is not a usable checkpoint.

    Local files and ``http(s)://`` URLs (downloaded into the cache now) are read with the
    policy. Other schemes (``torchvision://``, ``s3://``, ...) are read, under the same
    policy, when the run loads them.
    """
    if is_url(path):
        if get_dist_info()[1] == 1 and local_rank() != 0:
            # A launched rank before its process group exists: local rank 0 downloads and
            # checks; this rank waits for that download when the model loads the checkpoint.
            return
    elif CheckpointLoader._get_checkpoint_loader(path) is not load_from_local:
        return
    try:
        open_checkpoint(path)
    except (FileNotFoundError, CheckpointError) as err:
        raise type(err)(f'{key}: {err}') from err


def _load_checkpoint_under_policy(cls, filename, map_location=None, logger='current'):
    """``CheckpointLoader.load_checkpoint`` (any scheme) with :func:`policy_load` as
    ``torch.load``."""
    with checkpoint_policy(filename):
        return _MMENGINE_LOAD_CHECKPOINT(cls, filename, map_location, logger)


#: mmengine's own ``CheckpointLoader.load_checkpoint`` (the scheme dispatch).
_MMENGINE_LOAD_CHECKPOINT = getattr(CheckpointLoader.load_checkpoint, '_mmengine_original',
                                    CheckpointLoader.load_checkpoint.__func__)
_load_checkpoint_under_policy._mmengine_original = _MMENGINE_LOAD_CHECKPOINT


def install_checkpoint_policy() -> None:
    """Make every checkpoint mmengine loads, of any scheme, follow :func:`policy_load`."""
    allow_mmengine_checkpoint_types()
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)
    CheckpointLoader.register_scheme(prefixes=URL_PREFIXES, loader=load_from_http, force=True)
    CheckpointLoader.load_checkpoint = classmethod(_load_checkpoint_under_policy)
