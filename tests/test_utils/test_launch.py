# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Process-group setup and teardown: the collective timeout, destroying the group."""
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mmdist.utils import launch, load_run_config, setup_cpu_distributed, shutdown_distributed
from mmdist.utils.launch import DEFAULT_COLLECTIVE_TIMEOUT, explain_collective_timeout


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


def test_a_group_still_referenced_after_shutdown_is_reported(monkeypatch):
    monkeypatch.setitem(os.environ, 'MASTER_ADDR', '127.0.0.1')
    monkeypatch.setitem(os.environ, 'MASTER_PORT', str(_free_port()))
    logged = []
    monkeypatch.setattr(launch, 'print_log', lambda msg, *args: logged.append(msg))
    dist.init_process_group('gloo', rank=0, world_size=1)
    group = dist.group.WORLD  # noqa: F841 - what keeps the group alive
    shutdown_distributed(wait_for_ranks=True)
    assert len(logged) == 1 and 'process group is still referenced' in logged[0]
    del group
    logged.clear()
    dist.init_process_group('gloo', rank=0, world_size=1)
    shutdown_distributed(wait_for_ranks=True)
    assert logged == []


#: Run in a fresh interpreter (what a rank of tools/train.py is): a DDP-wrapped model in a
#: reference cycle, as inside mmengine's Runner, trained one step, then dropped.
_FREE_GROUP_SCRIPT = """
import os, sys, weakref
from mmdist.utils import shutdown_distributed
import torch, torch.distributed as dist
from mmengine.model import MMDistributedDataParallel

def threads():
    return len(os.listdir('/proc/self/task'))

torch.set_num_threads(1)  # no intra-op pool threads appear during the test
before = threads()
dist.init_process_group('gloo', rank=0, world_size=1,
                        init_method='tcp://127.0.0.1:' + sys.argv[1])
model = MMDistributedDataParallel(module=torch.nn.Linear(2, 2), device_ids=None)
model.module.runner = model  # a cycle: freed only by the garbage collector
model(torch.ones(1, 2)).sum().backward()
group = weakref.ref(dist.group.WORLD)
with_group = threads()
del model
shutdown_distributed(wait_for_ranks=True)
print(before, with_group, threads(), group() is None)
"""


@pytest.mark.skipif(not os.path.isdir('/proc/self/task'), reason='counts threads in /proc')
def test_shutdown_frees_the_group_and_joins_its_threads():
    """gloo's worker threads must be gone before the interpreter shuts down: a thread that
    drops a tensor then aborts the process (pytorch/pytorch#190489). Destroying the group
    leaves them running; only freeing the group object joins them."""
    result = subprocess.run([sys.executable, '-c', _FREE_GROUP_SCRIPT, str(_free_port())],
                            env=dict(os.environ, OMP_NUM_THREADS='1'), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    before, with_group, after, freed = result.stdout.split()[-4:]
    assert int(with_group) > int(before)  # the group's worker threads
    assert (int(after), freed) == (int(before), 'True'), result.stdout + result.stderr[-2000:]


def test_collective_timeout_default_override_and_bad_values(tmp_path):
    config = tmp_path / 'cfg.py'
    config.write_text("env_cfg = dict(dist_cfg=dict(backend='nccl'))\n")
    cfg = load_run_config(str(config), str(tmp_path), 'pytorch', None)
    assert cfg.env_cfg.dist_cfg == dict(backend='nccl', timeout=DEFAULT_COLLECTIVE_TIMEOUT)
    assert DEFAULT_COLLECTIVE_TIMEOUT == 600
    cfg = load_run_config(str(config), str(tmp_path), 'pytorch',
                          {'env_cfg.dist_cfg.timeout': 90})
    assert cfg.env_cfg.dist_cfg.timeout == 90
    for bad in (0, -5, '90', True):
        with pytest.raises(ValueError, match=r'env_cfg.dist_cfg.timeout must be a positive '
                           r'number of seconds, got'):
            load_run_config(str(config), str(tmp_path), 'pytorch',
                            {'env_cfg.dist_cfg.timeout': bad})


def _stalled_peer_worker(rank, port, config, conn, go):
    """Rank 0 waits in an all-reduce for rank 1, which the parent process has SIGSTOPped.

    Each rank reports through its own pipe: a queue shared by both ranks has a lock that
    rank 1 may hold at the moment it is stopped."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE='2',
                      MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    # What tools/train.py does: load the config (--cfg-options env_cfg.dist_cfg.timeout=2),
    # set up the gloo group, run inside explain_collective_timeout.
    cfg = load_run_config(config, os.path.dirname(config), 'pytorch',
                          {'env_cfg.dist_cfg.timeout': 2})
    setup_cpu_distributed(cfg)
    conn.send(('ready', rank, os.getpid()))
    if rank == 1:
        time.sleep(600)  # stopped by the parent long before this ends
        return
    go.wait()
    start = time.monotonic()
    try:
        with explain_collective_timeout():
            dist.all_reduce(torch.ones(1))
        conn.send(('finished', rank, time.monotonic() - start))
    except Exception as err:  # noqa: BLE001 - reported to the parent process
        conn.send((f'{type(err).__name__}: {err}', rank, time.monotonic() - start))


def test_a_stopped_rank_fails_the_run_after_the_configured_timeout(tmp_path):
    config = tmp_path / 'cfg.py'
    config.write_text('work_dir = None\n')
    ctx = mp.get_context('spawn')
    go = ctx.Event()
    pipes = [ctx.Pipe(duplex=False) for _ in range(2)]  # (reader, writer) per rank
    port = _free_port()
    procs = [ctx.Process(target=_stalled_peer_worker, args=(rank, port, str(config), writer, go))
             for rank, (_, writer) in enumerate(pipes)]
    for proc in procs:
        proc.start()

    def receive(rank, timeout):
        assert pipes[rank][0].poll(timeout), f'rank {rank} sent nothing in {timeout} s'
        return pipes[rank][0].recv()

    try:
        for rank in (0, 1):
            assert receive(rank, 120)[0] == 'ready'
        os.kill(procs[1].pid, signal.SIGSTOP)  # a hung rank
        go.set()
        outcome, rank, waited = receive(0, 60)
    finally:
        for proc in procs:
            proc.kill()
            proc.join()
    assert rank == 0
    assert outcome.startswith('CollectiveTimeoutError: a collective operation waited longer '
                              'than env_cfg.dist_cfg.timeout for another rank'), outcome
    assert 1.5 < waited < 30, waited
