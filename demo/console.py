# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""What the person running the demo sees: stage headers, progress lines, elapsed time.

Each training and test run logs hundreds of lines (config dump, per-parameter init,
per-iteration losses, COCO evaluation tables). The demo sends all of that to a log file
per stage (:class:`OutputRouter`) and prints short progress lines instead
(:class:`Console`, :class:`ProgressHook`). ``--verbose`` shows both.
"""
import contextlib
import io
import sys
import time
from typing import Iterator, Optional, TextIO

from mmengine.hooks import Hook


def format_duration(seconds: float) -> str:
    """``83.4`` -> ``'1:23'``; ``4000`` -> ``'1:06:40'``."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f'{hours}:{minutes:02d}:{secs:02d}' if hours else f'{minutes}:{secs:02d}'


class OutputRouter(io.TextIOBase):
    """A ``sys.stdout`` / ``sys.stderr`` stand-in that writes to the current sink.

    Installed once for the whole demo, so that every logging handler created on the way
    (mmengine makes one per runner, holding whatever ``sys.stdout`` was then) writes
    through it; :meth:`to_file` points it at a stage's log file for a while.

    Args:
        terminal: the real stream (shown to the user).
        echo: also copy routed output to ``terminal`` (``--verbose``).
    """

    def __init__(self, terminal: TextIO, echo: bool = False) -> None:
        super().__init__()
        self.terminal = terminal
        self.echo = echo
        self._file: Optional[TextIO] = None

    def write(self, text: str) -> int:
        if self._file is not None:
            self._file.write(text)
        if self._file is None or self.echo:
            self.terminal.write(text)
        return len(text)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()
        self.terminal.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.terminal.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.terminal, 'encoding', 'utf-8')

    @contextlib.contextmanager
    def to_file(self, path: str) -> Iterator[None]:
        """Route everything written inside the block to ``path`` (appended)."""
        previous = self._file
        with open(path, 'a', encoding='utf-8') as f:
            self._file = f
            try:
                yield
            finally:
                f.flush()
                self._file = previous


@contextlib.contextmanager
def routed_output(echo: bool = False,
                  terminal: Optional[TextIO] = None) -> Iterator['RouterPair']:
    """Install :class:`OutputRouter` as ``sys.stdout`` and ``sys.stderr`` for the block.

    Args:
        echo: also show routed output on the terminal.
        terminal: the stream progress goes to (default: the current ``sys.stdout``).
    """
    out = OutputRouter(terminal or sys.stdout, echo)
    err = OutputRouter(sys.stderr if terminal is None else terminal, echo)
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        yield RouterPair(out, err)
    finally:
        sys.stdout, sys.stderr = saved


class RouterPair:
    """The stdout and stderr routers, switched together."""

    def __init__(self, out: OutputRouter, err: OutputRouter) -> None:
        self.out, self.err = out, err

    @property
    def terminal(self) -> TextIO:
        return self.out.terminal

    @contextlib.contextmanager
    def to_file(self, path: str) -> Iterator[None]:
        with self.out.to_file(path), self.err.to_file(path):
            yield


class Console:
    """Prints the demo's progress to the real terminal with the elapsed time.

    Args:
        stream: where to print (the terminal, not the routed ``sys.stdout``).
        num_stages: total number of stages, shown as ``[k/n]``.
    """

    def __init__(self, stream: TextIO, num_stages: int) -> None:
        self.stream = stream
        self.num_stages = num_stages
        self.stage = 0
        self.start = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def print(self, text: str = '') -> None:
        self.stream.write(text + '\n')
        self.stream.flush()

    def info(self, text: str) -> None:
        """A line prefixed with the elapsed time."""
        self.print(f'[{format_duration(self.elapsed):>7}] {text}')

    def begin_stage(self, title: str) -> None:
        self.stage += 1
        self.info(f'stage {self.stage}/{self.num_stages}: {title}')

    def detail(self, text: str) -> None:
        """An indented line under the current stage."""
        self.print(f'{"":10}{text}')


class ProgressHook(Hook):
    """Prints ``iter k/N  loss ...`` about ``updates`` times per training run.

    Args:
        console: where to print.
        updates: number of progress lines per run (plus the last iteration).
    """

    priority = 'VERY_LOW'

    def __init__(self, console: Console, updates: int = 5) -> None:
        self.console = console
        self.updates = updates
        self._start = 0.0

    def before_train(self, runner) -> None:
        self._start = time.monotonic()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        step, total = runner.iter + 1, runner.max_iters
        every = max(total // self.updates, 1)
        if step % every and step != total:
            return
        loss = ''
        if outputs and 'loss' in outputs:
            value = outputs['loss']
            value = value.detach().item() if hasattr(value, 'detach') else float(value)
            loss = f'  loss {value:.3f}'
        spent = time.monotonic() - self._start
        eta = spent / step * (total - step)
        self.console.detail(f'iter {step:>5}/{total}{loss}  ({format_duration(spent)} spent, '
                            f'~{format_duration(eta)} left)')
