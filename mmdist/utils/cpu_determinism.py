# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""The same floating-point bits on every x86-64 CPU with AVX2: pinned CPU code paths.

PyTorch's CPU kernels, MKL and oneDNN pick their code when they load, from the CPU they
find: ATen's vector width (AVX2 or AVX-512), MKL's code path (by instruction set and by
CPU vendor), oneDNN's kernels and their blocking (by instruction set and by cache size).
Each choice rounds differently, and hundreds of training iterations turn a last-bit
difference into a different model. Pinned, a run takes the same path on every x86-64 CPU
with AVX2 (measured evidence: ``tools/analysis_tools/cpu_determinism_check.py``, tables in
``docs/demo.md``):

* :data:`PINNED_ENV`, read once when the libraries load: it must be in the environment
  before ``import torch``. The entry points (``python -m demo``, the projects' run
  scripts) call :func:`reexec_pinned` first, which re-runs the same command with it;
* :func:`pinned_torch`, the settings torch takes at run time: oneDNN off (its blocking
  follows the cache sizes, which no setting pins; convolutions then run as im2col + MKL
  matrix products), deterministic algorithms, a fixed number of threads, and
  ``torch.compile``'s vector width (:data:`INDUCTOR_SIMDLEN`).
"""
import contextlib
import os
import platform
import sys
from dataclasses import dataclass
from typing import Dict, Iterator, List, Mapping, Optional

import torch
from torch._inductor import config as inductor_config

#: Environment pinned before torch loads (variable -> value).
PINNED_ENV: Dict[str, str] = {
    # ATen's vectorised kernels and torch.compile's generated C++: the AVX2 code (8 float
    # lanes) on every CPU that has AVX2, also those with AVX-512.
    'ATEN_CPU_CAPABILITY': 'avx2',
    # MKL's matrix products: its one code path (SSE2) that gives the same bits on Intel
    # and AMD CPUs, with fixed blocking. MKL honours the AVX2 branch on Intel CPUs only
    # (on others it silently falls back to AUTO, the CPU's own path).
    'MKL_CBWR': 'COMPATIBLE',
}

#: ``torch._inductor.config.cpp.simdlen`` of pinned runs: AVX2's 256 bits, as
#: ``ATEN_CPU_CAPABILITY=avx2`` already makes inductor choose. Set in the config it is part
#: of the key of inductor's on-disk cache: with the environment variable alone, code cached
#: by an unpinned run (AVX-512) was reused by a pinned one, compiled with AVX2 flags, and
#: gave NaN (the other way round: "double free or corruption").
INDUCTOR_SIMDLEN = 256

#: Option of the entry points that turns the pinning off.
NO_PIN_OPTION = '--no-pin-cpu'
NO_PIN_HELP = ('do not pin the CPU code paths: training about 3x faster, but the numbers '
               'then depend on the CPU (see docs/demo.md)')


def env_pinned(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether ``environ`` holds every value of :data:`PINNED_ENV`."""
    return all(environ.get(key) == value for key, value in PINNED_ENV.items())


def reexec_pinned() -> None:
    """Re-run this Python command (``sys.orig_argv``) with :data:`PINNED_ENV` set, in
    place of this process (``os.execve``), unless the environment already holds it.

    Call it only from a script's entry point (it never returns when it re-executes):
    torch, MKL and oneDNN read these variables when they load, so setting them in a
    process that has imported torch would be too late for some of them.
    """
    if env_pinned():
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, sys.orig_argv, {**os.environ, **PINNED_ENV})


@dataclass(frozen=True)
class CpuPinning:
    """What a process runs with: the pinned settings, or not.

    Attributes:
        requested: the run asked for pinning (no ``--no-pin-cpu``).
        env: the value of each :data:`PINNED_ENV` variable in this process (None: unset).
        mkldnn: oneDNN (``torch.backends.mkldnn``) enabled.
        deterministic: ``torch.use_deterministic_algorithms`` on.
        simdlen: ``torch._inductor.config.cpp.simdlen`` (None: inductor's choice).
        threads: torch intra-op threads.
        capability: ``torch.backends.cpu.get_cpu_capability()`` in this process.
    """

    requested: bool
    env: Dict[str, Optional[str]]
    mkldnn: bool
    deterministic: bool
    simdlen: Optional[int]
    threads: int
    capability: str

    @property
    def pinned(self) -> bool:
        """Every pinned setting is in force, and torch runs its AVX2 code."""
        return not self._problems()

    def _problems(self) -> List[str]:
        """What keeps this process from the pinned code paths."""
        missing = ' '.join(f'{k}={v}' for k, v in PINNED_ENV.items() if self.env[k] != v)
        if missing:
            problems = [f'{missing} not in the environment when torch loaded (python -m demo '
                        'and the projects\' run scripts set it)']
        elif self.capability != 'AVX2':
            problems = [f'torch runs its {self.capability} code (a CPU without AVX2?)']
        else:
            problems = []
        wrong = {'oneDNN on': self.mkldnn, 'deterministic algorithms off': not
                 self.deterministic, f'torch.compile simdlen {self.simdlen}':
                 self.simdlen != INDUCTOR_SIMDLEN}
        return problems + [name for name, is_wrong in wrong.items() if is_wrong]

    def key(self) -> Dict:
        """What a cache key needs: runs with other settings give other weights."""
        return dict(pinned=self.pinned, env=self.env, mkldnn=self.mkldnn,
                    deterministic=self.deterministic, simdlen=self.simdlen,
                    threads=self.threads, capability=self.capability)

    def describe(self) -> str:
        """One line for a header or report."""
        seen = f'torch CPU capability {self.capability}, {self.threads} thread(s)'
        if self.pinned:
            settings = ' '.join(f'{k}={v}' for k, v in PINNED_ENV.items())
            return (f'CPU pinned: {settings}, oneDNN off, deterministic algorithms, '
                    f'torch.compile simdlen {INDUCTOR_SIMDLEN} ({seen}; the numbers are those '
                    f'of any x86-64 CPU with AVX2 and the same library versions)')
        if not self.requested:
            return (f'CPU not pinned ({NO_PIN_OPTION}): the numbers depend on this CPU '
                    f'({seen}, oneDNN {"on" if self.mkldnn else "off"})')
        return (f'CPU pinning INCOMPLETE: {"; ".join(self._problems())}; the numbers depend '
                f'on this CPU ({seen})')


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or the architecture where unknown."""
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.machine() or 'unknown CPU'


def current_pinning(requested: bool) -> CpuPinning:
    """The settings this process runs with now."""
    return CpuPinning(requested=requested,
                      env={key: os.environ.get(key) for key in PINNED_ENV},
                      mkldnn=torch.backends.mkldnn.enabled,
                      deterministic=torch.are_deterministic_algorithms_enabled(),
                      simdlen=inductor_config.cpp.simdlen,
                      threads=torch.get_num_threads(),
                      capability=torch.backends.cpu.get_cpu_capability())


def set_torch_pinning(threads: int, pin: bool = True) -> CpuPinning:
    """Set torch's run-time settings for good (a worker process): ``threads`` intra-op
    threads and, with ``pin``, oneDNN off, deterministic algorithms and inductor's
    :data:`INDUCTOR_SIMDLEN`."""
    if threads < 1:
        raise ValueError(f'threads must be >= 1, got {threads}')
    torch.set_num_threads(threads)
    if pin:
        torch.backends.mkldnn.enabled = False
        torch.use_deterministic_algorithms(True)
        inductor_config.cpp.simdlen = INDUCTOR_SIMDLEN
    return current_pinning(pin)


@contextlib.contextmanager
def pinned_torch(threads: int, pin: bool = True) -> Iterator[CpuPinning]:
    """:func:`set_torch_pinning` inside the block; the previous settings afterwards."""
    saved = (torch.get_num_threads(), torch.backends.mkldnn.enabled,
             torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(), inductor_config.cpp.simdlen)
    try:
        yield set_torch_pinning(threads, pin)
    finally:
        torch.set_num_threads(saved[0])
        torch.backends.mkldnn.enabled = saved[1]
        torch.use_deterministic_algorithms(saved[2], warn_only=saved[3])
        inductor_config.cpp.simdlen = saved[4]
