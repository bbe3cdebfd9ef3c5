# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Write files so that readers see either the previous file or the complete new one.

A checkpoint written in place is left truncated when the write fails midway (disk full,
quota, a killed job); ``last_checkpoint`` may then name it. :func:`atomic_write` writes a
temporary file next to the target, flushes it to disk and renames it over the target.
:class:`AtomicLocalBackend` is mmengine's local file backend with that ``put``; it is
registered as the mmengine file backend ``'mmdist_atomic_local'``.
"""
import contextlib
import os
import os.path as osp
from pathlib import Path
from typing import Union

from mmengine.fileio import LocalBackend, register_backend

#: Name of :class:`AtomicLocalBackend` among mmengine's file backends (``backend_args``).
ATOMIC_LOCAL_BACKEND = 'mmdist_atomic_local'


def atomic_write(path: Union[str, Path], data: bytes) -> None:
    """Write ``data`` to ``path`` through ``<path>.tmp``, fsync'ed, then renamed.

    On any failure the temporary file is removed and ``path`` is left as it was.
    """
    path = str(path)
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f'{path}.tmp'
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    # Make the rename itself durable; not every file system lets a folder be fsync'ed.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class AtomicLocalBackend(LocalBackend):
    """mmengine's :class:`~mmengine.fileio.LocalBackend` writing through :func:`atomic_write`."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        atomic_write(filepath, obj)

    def put_text(self, obj: str, filepath: Union[str, Path], encoding: str = 'utf-8') -> None:
        atomic_write(filepath, obj.encode(encoding))


register_backend(ATOMIC_LOCAL_BACKEND, AtomicLocalBackend, force=True)
