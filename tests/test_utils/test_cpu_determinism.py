# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""The pinned CPU code paths: the same bits under every cap that emulates another CPU
(a reduced ``tools/analysis_tools/cpu_determinism_check.py``), the in-process settings and
their restoration, the re-execution with the pinned environment."""
import os
import os.path as osp
import platform
import runpy
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from demo.paths import ROOT
from mmdist.utils import cpu_determinism
from mmdist.utils.cpu_determinism import (INDUCTOR_SIMDLEN, PINNED_ENV, current_pinning,
                                          pinned_torch)


def _load_check() -> SimpleNamespace:
    """``tools/analysis_tools/cpu_determinism_check.py``'s functions and combinations."""
    return SimpleNamespace(**runpy.run_path(
        osp.join(ROOT, 'tools', 'analysis_tools', 'cpu_determinism_check.py')))


def _has_avx2() -> bool:
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            flags = next(line for line in f if line.startswith('flags')).split()
    except (OSError, StopIteration):
        return False
    return 'avx2' in flags and 'fma' in flags


needs_avx2 = pytest.mark.skipif(platform.machine() != 'x86_64' or not _has_avx2(),
                                reason='the pinning covers x86-64 CPUs with AVX2')


@needs_avx2
def test_pinned_ops_agree_bit_for_bit_under_every_cap():
    """Caps that make oneDNN and MKL pick what they would on an older CPU change the
    bits of an unpinned run, and leave those of a pinned run as they are."""
    check = _load_check()
    # MMDIST_COMPILE=0 (conftest): the DIST loss runs eagerly, no compilation here.
    results = {name: check.run_combo(check.COMBOS[name])
               for name in ('host', 'caps', 'pinned', '+caps')}
    assert results['pinned']['capability'] == 'AVX2'
    # The caps take effect without the pinning (so the agreement below can fail) ...
    assert 'conv3x3 fwd' in check.differences(results, 'caps', 'host')
    # ... the pinning changes the paths (oneDNN off, MKL's compatible branch) ...
    assert {'conv3x3 fwd', 'matmul'} <= set(check.differences(results, 'pinned', 'host'))
    # ... and with it the caps change nothing.
    assert check.differences(results, '+caps', 'pinned') == []


def test_pinned_torch_sets_and_restores_the_runtime_settings():
    from torch._inductor import config as inductor_config
    before = (torch.get_num_threads(), torch.backends.mkldnn.enabled,
              torch.are_deterministic_algorithms_enabled(), inductor_config.cpp.simdlen)
    with pinned_torch(1) as pinning:
        assert torch.get_num_threads() == 1
        assert not torch.backends.mkldnn.enabled
        assert torch.are_deterministic_algorithms_enabled()
        assert inductor_config.cpp.simdlen == INDUCTOR_SIMDLEN
        assert pinning.requested and not pinning.mkldnn and pinning.simdlen == 256
        # This test process loaded torch without the pinned environment: said so.
        assert pinning.pinned == cpu_determinism.env_pinned()
    assert (torch.get_num_threads(), torch.backends.mkldnn.enabled,
            torch.are_deterministic_algorithms_enabled(),
            inductor_config.cpp.simdlen) == before
    with pinned_torch(1, pin=False) as pinning:
        assert torch.backends.mkldnn.enabled == before[1] and not pinning.pinned
    with pytest.raises(ValueError, match='threads must be >= 1'):
        with pinned_torch(0):
            pass


def test_describe_says_what_is_pinned_and_what_is_not():
    pinning = current_pinning(True)
    pinned = pinning.__class__(**dict(pinning.__dict__, env=dict(PINNED_ENV), mkldnn=False,
                                      deterministic=True, simdlen=INDUCTOR_SIMDLEN,
                                      capability='AVX2'))
    assert pinned.pinned
    line = pinned.describe()
    assert line.startswith('CPU pinned: ATEN_CPU_CAPABILITY=avx2 MKL_CBWR=COMPATIBLE')
    assert 'oneDNN off' in line and 'deterministic' in line
    off = pinning.__class__(**dict(pinned.__dict__, requested=False, mkldnn=True))
    assert not off.pinned and '--no-pin-cpu' in off.describe()
    assert 'depend on this CPU' in off.describe()
    partial = pinning.__class__(**dict(pinned.__dict__, env=dict(
        PINNED_ENV, MKL_CBWR=None)))
    assert 'INCOMPLETE: MKL_CBWR=COMPATIBLE not in the environment' in partial.describe()
    no_avx2 = pinning.__class__(**dict(pinned.__dict__, capability='DEFAULT'))
    assert not no_avx2.pinned and 'runs its DEFAULT code' in no_avx2.describe()
    # Cache keys tell the pinned run from the others.
    assert len({str(p.key()) for p in (pinned, off, partial, no_avx2)}) == 4


@needs_avx2
def test_reexec_pins_torch_and_keeps_compiled_code_apart(tmp_path):
    """The entry point re-executes itself with the pinned environment (torch then runs
    its AVX2 code), and its torch.compile'd code is right after an unpinned process
    filled inductor's on-disk cache. Inductor's cache key misses ATEN_CPU_CAPABILITY: on
    a CPU with AVX-512, the pinned process loaded the AVX-512 code, built it with AVX2
    flags and returned wrong sums, until the pinning also set inductor's simdlen (the
    key holds deterministic mode too: the unpinned process runs with it, as a config
    with ``randomness.deterministic=True`` does)."""
    script = tmp_path / 'entry.py'
    script.write_text(
        'import os, sys\n'
        f'sys.path.insert(0, {ROOT!r})\n'
        'from mmdist.utils.cpu_determinism import reexec_pinned, set_torch_pinning\n'
        'print("start", flush=True)\n'
        'if sys.argv[1] == "pinned":\n'
        '    reexec_pinned()\n'
        '    set_torch_pinning(1)\n'
        'import torch\n'
        'torch.use_deterministic_algorithms(True)  # as randomness.deterministic=True\n'
        'x = torch.linspace(-3, 3, 37 * 19).reshape(37, 19)\n'
        'w = torch.linspace(0.5, 1.5, 19)\n'
        'fn = lambda x, w: ((x * w).sigmoid() * x).sum(1)\n'
        'error = (torch.compile(fn)(x, w) - fn(x, w)).abs().max().item()\n'
        'print(os.environ.get("ATEN_CPU_CAPABILITY"), torch.backends.cpu.get_cpu_capability(),\n'
        '      error < 1e-4, sys.argv[1:])\n')
    env = {k: v for k, v in os.environ.items() if k not in PINNED_ENV}
    env['TORCHINDUCTOR_CACHE_DIR'] = str(tmp_path / 'inductor')

    def run(*args):
        return subprocess.run([sys.executable, str(script), *args], env=env,
                              capture_output=True, text=True, check=True).stdout.split('\n')

    host = torch.backends.cpu.get_cpu_capability()
    assert run('unpinned')[:2] == ['start', f'None {host} True [\'unpinned\']']
    # Started twice (the second time with the environment), ran on once.
    assert run('pinned', 'a b')[:3] == ['start', 'start', "avx2 AVX2 True ['pinned', 'a b']"]


def test_demo_cli_reexecs_only_from_the_command_line(monkeypatch):
    import demo
    import demo.__main__ as demo_cli
    calls, runs = [], []
    monkeypatch.setattr(demo_cli, 'reexec_pinned', lambda: calls.append('reexec'))
    monkeypatch.setattr(demo, 'run_demo', lambda options: runs.append(options))
    monkeypatch.setattr(sys, 'argv', ['demo', '--tiny'])
    demo_cli.main()
    assert calls == ['reexec'] and runs[-1].pin_cpu
    monkeypatch.setattr(sys, 'argv', ['demo', '--tiny', '--no-pin-cpu'])
    demo_cli.main()
    assert calls == ['reexec'] and not runs[-1].pin_cpu
    demo_cli.main(['--tiny'])  # called from Python: no re-execution
    assert calls == ['reexec'] and runs[-1].pin_cpu
