# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Checkpoint downloads: a bounded timeout (``MMDIST_DOWNLOAD_TIMEOUT``), a cache keyed by
the whole URL, torch hub's file-name hash check, and one download per node (local rank 0)
while the node's other ranks wait."""
import hashlib
import http.client
import os
import os.path as osp
import uuid
from typing import Any
from urllib.error import URLError
from urllib.parse import urlparse
from urllib.request import Request, urlopen

import torch
from mmengine.dist import all_reduce, get_dist_info
from mmengine.logging import print_log

DOWNLOAD_TIMEOUT_ENV = 'MMDIST_DOWNLOAD_TIMEOUT'
DEFAULT_DOWNLOAD_TIMEOUT = 60.0
URL_PREFIXES = ('http://', 'https://')


class DownloadError(OSError):
    """A download failed, timed out or does not match the hash in its file name."""


def is_url(path: Any) -> bool:
    """Whether ``path`` is an ``http(s)://`` URL."""
    return isinstance(path, str) and path.startswith(URL_PREFIXES)


def download_timeout() -> float:
    """Seconds without data before a download fails (``MMDIST_DOWNLOAD_TIMEOUT``, default 60)."""
    value = os.environ.get(DOWNLOAD_TIMEOUT_ENV)
    if value is None:
        return DEFAULT_DOWNLOAD_TIMEOUT
    try:
        timeout = float(value)
    except ValueError:
        timeout = float('nan')
    if not timeout > 0:
        raise ValueError(f'{DOWNLOAD_TIMEOUT_ENV} must be a number of seconds > 0, got {value!r}')
    return timeout


def local_rank() -> int:
    """This process's rank on its node (``LOCAL_RANK``, set by torchrun, slurm and the tools)."""
    return int(os.environ.get('LOCAL_RANK', 0))


def url_cache_path(url: str) -> str:
    """``<torch hub dir>/checkpoints/mmdist/<first 16 hex of sha256(url)>/<file name>``.

    Keyed by the whole URL: ``.../a/teacher.pth`` and ``.../b/teacher.pth`` never share a
    file. ``TORCH_HOME`` moves the hub dir (``torch.hub.get_dir``).
    """
    name = osp.basename(urlparse(url).path) or 'checkpoint.pth'
    key = hashlib.sha256(url.encode('utf-8')).hexdigest()[:16]
    return osp.join(torch.hub.get_dir(), 'checkpoints', 'mmdist', key, name)


def _download(url: str, dst: str, timeout: float) -> None:
    """Download ``url`` to ``dst`` through a temporary file; check the name's hash suffix.

    A file name ``name-<hex>.ext`` (torch hub's and OpenMMLab's convention) must have a
    SHA-256 starting with ``<hex>``. Only a complete, verified file is renamed to ``dst``.
    """
    os.makedirs(osp.dirname(dst), exist_ok=True)
    match = torch.hub.HASH_REGEX.search(osp.basename(dst))
    expected = match.group(1) if match else ''
    partial = f'{dst}.{uuid.uuid4().hex}.partial'
    sha256 = hashlib.sha256()
    no_data = (f'downloading {url!r}: no data for {timeout:g} s (set {DOWNLOAD_TIMEOUT_ENV}'
               '=SECONDS to wait longer)')
    print_log(f'downloading {url} to {dst}', 'current')
    try:
        try:
            request = Request(url, headers={'User-Agent': 'mmdist'})
            with urlopen(request, timeout=timeout) as response, open(partial, 'wb') as out:
                while True:
                    chunk = response.read(1 << 20)
                    if not chunk:
                        break
                    out.write(chunk)
                    sha256.update(chunk)
        except TimeoutError as err:
            raise DownloadError(no_data) from err
        except URLError as err:  # also HTTPError; a connect timeout arrives wrapped
            if isinstance(err.reason, TimeoutError):
                raise DownloadError(no_data) from err
            raise DownloadError(f'downloading {url!r} failed: {err}') from err
        except (OSError, http.client.HTTPException) as err:
            raise DownloadError(f'downloading {url!r} failed: {err!r}') from err
        digest = sha256.hexdigest()
        if not digest.startswith(expected):
            raise DownloadError(
                f'downloaded {url!r} has SHA-256 {digest[:max(len(expected), 8)]}..., but its '
                f'file name says {expected!r}: a corrupt or wrong file (not cached)')
        os.replace(partial, dst)
    finally:
        if osp.exists(partial):
            os.remove(partial)


def download_checkpoint(url: str) -> str:
    """The local copy of ``url`` in :func:`url_cache_path`, downloaded once per node.

    In a distributed run, local rank 0 of each node downloads it (unless cached) while the
    node's other ranks wait; a failed download on any rank fails every rank.

    Raises:
        DownloadError: the download failed, timed out (``MMDIST_DOWNLOAD_TIMEOUT``) or
            does not match the hash in its file name.
    """
    timeout = download_timeout()
    cached = url_cache_path(url)
    _, world_size = get_dist_info()
    error = None
    if (world_size == 1 or local_rank() == 0) and not osp.isfile(cached):
        try:
            _download(url, cached, timeout)
        except DownloadError as err:
            error = err
    if world_size > 1:  # the ranks that did not download wait here for those that did
        failed = torch.tensor([int(error is not None)])
        all_reduce(failed)
        if error is None and failed.item():
            raise DownloadError(f'downloading {url!r} failed on {failed.item()} other '
                                  'rank(s); see their log')
    if error is not None:
        raise error
    return cached
