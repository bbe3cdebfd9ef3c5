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
