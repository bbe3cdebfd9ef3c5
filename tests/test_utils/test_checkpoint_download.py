# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Checkpoint URLs: timeout, a cache keyed by the whole URL, hash suffixes, one download per
node, and URLs wherever a checkpoint path is accepted. Served from 127.0.0.1."""
import glob
import hashlib
import io
import multiprocessing
import os
import os.path as osp
import socket
import time
import traceback

import pytest
import torch
from mmengine.config import Config
from mmengine.runner.checkpoint import CheckpointLoader

from mmdist.models.utils.teacher import build_teacher
from mmdist.testing._http import FileServer, SilentServer
from mmdist.utils import CheckpointError, validate_checkpoint, validate_run_checkpoints
from mmdist.utils.checkpoint import load_from_http
from mmdist.utils.download import DOWNLOAD_TIMEOUT_ENV, url_cache_path

#: A teacher that builds in milliseconds (only its checkpoint handling is tested here).
TINY_TEACHER = dict(default_scope='mmdet',
                    model=dict(type='ResNet', depth=18, base_channels=2, init_cfg=None))


def checkpoint_bytes(value: float) -> bytes:
    buffer = io.BytesIO()
    torch.save({'state_dict': {'w': torch.full((2, ), value)}}, buffer)
    return buffer.getvalue()


@pytest.fixture(scope='module')
def server():
    server = FileServer()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    monkeypatch.delenv(DOWNLOAD_TIMEOUT_ENV, raising=False)
    monkeypatch.delenv('LOCAL_RANK', raising=False)


def test_cache_is_keyed_by_the_whole_url(server):
    server.files['/a/teacher.pth'] = checkpoint_bytes(1.0)
    server.files['/b/teacher.pth'] = checkpoint_bytes(2.0)
    a, b = server.url('/a/teacher.pth'), server.url('/b/teacher.pth')
    assert CheckpointLoader.load_checkpoint(a)['state_dict']['w'].tolist() == [1.0, 1.0]
    assert CheckpointLoader.load_checkpoint(b)['state_dict']['w'].tolist() == [2.0, 2.0]
    assert url_cache_path(a) != url_cache_path(b)
    assert osp.basename(url_cache_path(a)) == 'teacher.pth'
    # Loaded again: from the cache, no second request.
    assert CheckpointLoader.load_checkpoint(a)['state_dict']['w'].tolist() == [1.0, 1.0]
    assert server.requests['/a/teacher.pth'] == 1


def test_hash_suffix_of_the_file_name_is_checked(server):
    body = checkpoint_bytes(3.0)
    prefix = hashlib.sha256(body).hexdigest()[:8]
    server.files[f'/h/teacher-{prefix}.pth'] = body
    good = server.url(f'/h/teacher-{prefix}.pth')
    assert CheckpointLoader.load_checkpoint(good)['state_dict']['w'].tolist() == [3.0, 3.0]
    wrong_prefix = 'deadbeef' if not prefix.startswith('deadbeef') else '0badc0de'
    server.files[f'/h/teacher-{wrong_prefix}.pth'] = body
    bad = server.url(f'/h/teacher-{wrong_prefix}.pth')
    with pytest.raises(CheckpointError, match=f"SHA-256 {prefix}.*file name says "
                       f"'{wrong_prefix}'.*not cached"):
        CheckpointLoader.load_checkpoint(bad)
    assert os.listdir(osp.dirname(url_cache_path(bad))) == []  # nothing kept, no .partial


def test_teacher_url_that_never_answers_times_out(monkeypatch):
    silent = SilentServer()
    monkeypatch.setenv(DOWNLOAD_TIMEOUT_ENV, '0.5')
    url = silent.url('/t.pth')
    start = time.monotonic()
    try:
        with pytest.raises(CheckpointError, match=f"^teacher_ckpt: downloading '{url}': no data "
                           f'for 0.5 s .*{DOWNLOAD_TIMEOUT_ENV}'):
            build_teacher(TINY_TEACHER, url)
    finally:
        silent.close()
    assert time.monotonic() - start < 30
    assert silent.connections, 'the download never reached the server'
    monkeypatch.setenv(DOWNLOAD_TIMEOUT_ENV, 'soon')
    with pytest.raises(ValueError, match=f"{DOWNLOAD_TIMEOUT_ENV} must be a number of seconds "
                       "> 0, got 'soon'"):
        build_teacher(TINY_TEACHER, url)


def test_urls_are_accepted_wherever_a_checkpoint_is(server, tmp_path):
    server.files['/run/iter_4.pth'] = checkpoint_bytes(4.0)
    url = server.url('/run/iter_4.pth')
    validate_checkpoint(url, 'checkpoint')  # tools/test.py
    cfg = Config(dict(load_from=url, resume=False, work_dir=str(tmp_path)))
    validate_run_checkpoints(cfg)  # load_from
    validate_run_checkpoints(Config(dict(load_from=url, resume=True, work_dir=str(tmp_path))))
    assert server.requests['/run/iter_4.pth'] == 1  # downloaded once, then cached
    missing = server.url('/run/missing.pth')
    with pytest.raises(CheckpointError, match=f"^--resume: downloading '{missing}' failed: "
                       'HTTP Error 404'):
        validate_run_checkpoints(Config(dict(load_from=missing, resume=True,
                                             work_dir=str(tmp_path))))


def _rank(rank: int, port: str, base: str, tmp: str, results) -> None:
    """Rank ``rank`` of 2 (a forked process): three downloads through the process group."""
    try:
        import torch.distributed as dist
        dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                                world_size=2)
        out = {}
        # One node: local ranks 0 and 1 share the cache; only local rank 0 downloads.
        os.environ.update(LOCAL_RANK=str(rank), TORCH_HOME=f'{tmp}/node')
        out['node'] = load_from_http(base + '/node/t.pth')['state_dict']['w'].tolist()
        # Two nodes without a shared cache: each node's local rank 0 downloads.
        os.environ.update(LOCAL_RANK='0', TORCH_HOME=f'{tmp}/node{rank}')
        out['nodes'] = load_from_http(base + '/nodes/t.pth')['state_dict']['w'].tolist()
        # A failed download fails every rank.
        os.environ.update(LOCAL_RANK=str(rank), TORCH_HOME=f'{tmp}/node')
        try:
            load_from_http(base + '/missing/t.pth')
            out['missing'] = 'loaded'
        except CheckpointError as err:
            out['missing'] = str(err)
        dist.destroy_process_group()
        results.put((rank, out))
    except BaseException:  # reported by the test
        results.put((rank, traceback.format_exc()))


def test_one_download_per_node_and_the_other_ranks_wait(server, tmp_path):
    server.files['/ranks/node/t.pth'] = checkpoint_bytes(5.0)
    server.files['/ranks/nodes/t.pth'] = checkpoint_bytes(6.0)
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = str(sock.getsockname()[1])
    context = multiprocessing.get_context('fork')  # no second import of torch and mmengine
    results = context.Queue()
    ranks = [context.Process(target=_rank, args=(rank, port, server.url('/ranks'),
                                                 str(tmp_path), results)) for rank in (0, 1)]
    for proc in ranks:
        proc.start()
    try:
        outs = dict(results.get(timeout=300) for _ in ranks)
    finally:
        for proc in ranks:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    for rank in (0, 1):
        assert isinstance(outs[rank], dict), outs[rank]
    assert [outs[r]['node'] for r in (0, 1)] == [[5.0, 5.0]] * 2
    assert server.requests['/ranks/node/t.pth'] == 1
    assert [outs[r]['nodes'] for r in (0, 1)] == [[6.0, 6.0]] * 2
    assert server.requests['/ranks/nodes/t.pth'] == 2
    assert 'HTTP Error 404' in outs[0]['missing']
    assert 'failed on 1 other rank' in outs[1]['missing']
    assert server.requests['/ranks/missing/t.pth'] == 1
    assert not glob.glob(str(tmp_path / '**' / '*.partial'), recursive=True)
