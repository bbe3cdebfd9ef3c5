# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""shutdown_distributed: the process group is destroyed before the interpreter exits."""
import os
import socket

import torch.distributed as dist

from mmdist.utils import shutdown_distributed


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_shutdown_destroys_the_process_group_and_is_a_no_op_without_one(monkeypatch):
    shutdown_distributed()  # nothing initialised: no error
    monkeypatch.setitem(os.environ, 'MASTER_ADDR', '127.0.0.1')
    monkeypatch.setitem(os.environ, 'MASTER_PORT', str(_free_port()))
    dist.init_process_group('gloo', rank=0, world_size=1)
    assert dist.is_initialized()
    shutdown_distributed()
    assert not dist.is_initialized()


def test_barrier_before_destroying_only_after_a_successful_run(monkeypatch):
    """After success all ranks meet before tearing the group down; after a failure no rank
    waits for peers that may never arrive."""
    monkeypatch.setitem(os.environ, 'MASTER_ADDR', '127.0.0.1')
    monkeypatch.setitem(os.environ, 'MASTER_PORT', str(_free_port()))
    calls = []
    barrier = dist.barrier
    monkeypatch.setattr(dist, 'barrier', lambda *a, **k: calls.append(dist.is_initialized())
                        or barrier(*a, **k))
    for wait, expected in ((True, [True]), (False, [])):
        calls.clear()
        dist.init_process_group('gloo', rank=0, world_size=1)
        shutdown_distributed(wait_for_ranks=wait)
        assert calls == expected  # the barrier ran while the group was still alive
        assert not dist.is_initialized()
