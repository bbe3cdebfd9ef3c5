# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Where the runs execute: one after another in this process (``jobs=1``), or in
``jobs`` worker processes (``multiprocessing`` spawn, one torch thread each by default),
so that a study uses every core of a machine. Runs are independent once their teacher
is trained; the study submits the teachers first and waits for them."""
import os.path as osp
import sys
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any, Callable, Dict, Iterable, Optional, Tuple

from .runs import test_only, train_and_test

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


@dataclass(frozen=True)
class Job:
    """``kind='train'``: :func:`~.runs.train_and_test` of ``args``; ``kind='test'``:
    :func:`~.runs.test_only` of ``args``. ``tag`` identifies the job for the caller."""

    kind: str
    args: Tuple
    tag: Any = None


def execute(job: Job) -> Dict:
    """Run ``job`` in this process; its result dict."""
    if job.kind == 'train':
        return train_and_test(*job.args)
    if job.kind == 'test':
        return test_only(*job.args)
    raise ValueError(f'unknown job kind {job.kind!r}; expected train or test')


def _init_worker(threads: int, pin: bool) -> None:
    if REPO_ROOT not in sys.path:
        sys.path.insert(0, REPO_ROOT)
    # The pinned environment is inherited from the parent (set before it loaded torch).
    from mmdist.utils.cpu_determinism import set_torch_pinning
    set_torch_pinning(threads, pin)
    from . import metrics  # noqa: F401  (registers mmdist.ClsAgreementMetric)


#: ``on_done(job, result)`` -> follow-up jobs (possibly none).
OnDone = Callable[[Job, Dict], Iterable[Job]]


class Executor:
    """Runs jobs in this process (``jobs=1``) or in a pool of ``jobs`` processes.

    Args:
        jobs: number of runs at a time (>= 1).
        threads: torch intra-op threads of each worker process.
        pin: the worker processes run with the pinned CPU settings
            (:func:`~mmdist.utils.cpu_determinism.set_torch_pinning`), as this one.
    """

    def __init__(self, jobs: int = 1, threads: int = 1, pin: bool = True) -> None:
        if jobs < 1:
            raise ValueError(f'--jobs must be >= 1, got {jobs}')
        self.jobs = jobs
        self._pool: Optional[ProcessPoolExecutor] = None
        if jobs > 1:
            self._pool = ProcessPoolExecutor(jobs, mp_context=get_context('spawn'),
                                             initializer=_init_worker,
                                             initargs=(threads, pin))

    def run(self, jobs: Iterable[Job], on_done: OnDone) -> None:
        """Run ``jobs`` and every follow-up job ``on_done`` returns; a job's failure
        stops the rest (finished runs stay stored) and is raised."""
        if self._pool is None:
            queue = deque(jobs)
            while queue:
                job = queue.popleft()
                queue.extendleft(reversed(list(on_done(job, execute(job)))))
            return
        pending: Dict[Future, Job] = {}

        def submit(new_jobs: Iterable[Job]) -> None:
            for job in new_jobs:
                pending[self._pool.submit(execute, job)] = job

        submit(jobs)
        try:
            while pending:
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for future in done:
                    job = pending.pop(future)
                    submit(on_done(job, future.result()))
        except BaseException:
            for future in pending:
                future.cancel()
            raise

    def __enter__(self) -> 'Executor':
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
