# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Bit-level effect of each CPU setting, and whether the pinned runs agree.

    python tools/analysis_tools/cpu_determinism_check.py [--combos NAME ...] [--eager]
        [--train det seg [--no-ops] [--roles student dist] [--iters 3]] [--json OUT]

Each combination of settings (:data:`COMBOS`) runs in a fresh process (the libraries
read their settings when they load) with an inductor cache of its own, and hashes the
float32 outputs of the operations a training step uses: convolution forward and
backward, softmax / log-softmax, GELU, sigmoid, matrix products, batch norm, bilinear
resize, cross-entropy, the DIST loss through ``torch.compile`` (``--eager``: without);
with ``--train``, the synthetic data and the model weights after ``--iters`` training
iterations of the demo's students (tiny data, ``tools/train.py``'s runner), and the
median CPU seconds per iteration.

One CPU emulates others: a further cap imposed on top of the pinning (oneDNN and MKL
limited to SSE4, ``torch.compile``'s C++ built for an AVX2-only CPU, numpy and OpenCV
without AVX-512) makes the libraries pick what they would on a CPU that lacks those
instructions; a pinned run must give the same bits under all of them. The table shows
the first 8 hex digits of each sha256 (``=``: the same as the group's reference) and,
per combination, which outputs differ from its reference (``host``: nothing set,
``three``: the three instruction-set variables, ``pinned``). Results on one machine:
docs/demo.md.
"""
import argparse
import hashlib
import json
import os
import os.path as osp
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from mmengine.hooks import Hook

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MARK = 'CPU_DETERMINISM_RESULT '
#: Every variable a combination may set; the others are removed from the environment.
KNOBS = ('ATEN_CPU_CAPABILITY', 'ONEDNN_MAX_CPU_ISA', 'DNNL_MAX_CPU_ISA', 'MKL_CBWR',
         'MKL_ENABLE_INSTRUCTIONS', 'TORCHINDUCTOR_CPP_MARCH', 'NPY_DISABLE_CPU_FEATURES',
         'OPENCV_CPU_DISABLE', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS')
#: numpy / OpenCV dispatch targets above AVX2 (what a CPU with AVX2 only lacks), in their
#: own spellings (numpy 1.26: ``__cpu_features__``; OpenCV 4.11 warns about unknown names).
NPY_AVX512 = 'AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL AVX512_SPR'
CV_AVX512 = 'AVX512F,AVX512-SKX,AVX512-COMMON,AVX512BW,AVX512CD,AVX512DQ,AVX512VL'
#: oneDNN and MKL limited to SSE4 (what they would pick on an older CPU).
CAPS = dict(ONEDNN_MAX_CPU_ISA='SSE41', MKL_ENABLE_INSTRUCTIONS='SSE4_2')


@dataclass(frozen=True)
class Combo:
    """Settings of one process: ``env`` on top of the pinned environment (``pinned``)
    or of none; ``mkldnn`` / ``deterministic`` (None: as pinned, i.e. off / on when
    ``pinned``, torch's defaults otherwise); torch ``threads``."""

    name: str
    group: str
    env: Dict[str, str] = field(default_factory=dict)
    pinned: bool = False
    mkldnn: Optional[bool] = None
    deterministic: Optional[bool] = None
    threads: int = 1
    note: str = ''


def _combos() -> List[Combo]:
    three = dict(ATEN_CPU_CAPABILITY='avx2', ONEDNN_MAX_CPU_ISA='AVX2', MKL_CBWR='AVX2')
    return [
        # Each setting alone, unpinned: its bit-level effect on this CPU.
        Combo('host', 'unpinned', note='nothing set: what this CPU picks'),
        Combo('aten=avx2', 'unpinned', dict(ATEN_CPU_CAPABILITY='avx2')),
        Combo('onednn=AVX2', 'unpinned', dict(ONEDNN_MAX_CPU_ISA='AVX2')),
        Combo('mkl_cbwr=AVX2', 'unpinned', dict(MKL_CBWR='AVX2')),
        Combo('mkl_cbwr=COMPATIBLE', 'unpinned', dict(MKL_CBWR='COMPATIBLE')),
        Combo('onednn-off', 'unpinned', mkldnn=False),
        # Caps emulating a CPU with fewer instructions, unpinned: they take effect.
        Combo('caps', 'unpinned', dict(CAPS), note='oneDNN and MKL as on an older CPU'),
        # Three variables alone leave oneDNN's choice to the CPU: the caps change bits.
        Combo('three', 'three', three, note='instruction sets pinned, oneDNN on'),
        Combo('three+caps', 'three', dict(three, **CAPS)),
        # The pinning, and caps on top of it.
        Combo('pinned', 'pinned', pinned=True, note='the pinned settings (reference)'),
        Combo('+caps', 'pinned', dict(CAPS), pinned=True),
        Combo('+march=x86-64-v3', 'pinned', dict(TORCHINDUCTOR_CPP_MARCH='x86-64-v3'),
              pinned=True, note='torch.compile\'s C++ as on a CPU with AVX2 only'),
        Combo('+np/cv-no-avx512', 'pinned',
              dict(NPY_DISABLE_CPU_FEATURES=NPY_AVX512, OPENCV_CPU_DISABLE=CV_AVX512),
              pinned=True, note='numpy and OpenCV without their AVX-512 code'),
        Combo('+nondeterministic', 'pinned', pinned=True, deterministic=False,
              note='deterministic algorithms off'),
        # Outside the claim: a CPU without AVX2, another thread count, oneDNN on.
        Combo('+aten=default', 'not covered', dict(ATEN_CPU_CAPABILITY='default'),
              pinned=True, note='a CPU without AVX2'),
        Combo('+2-threads', 'not covered', pinned=True, threads=2),
        Combo('+onednn-on', 'not covered', pinned=True, mkldnn=True,
              note='oneDNN convolutions: faster, blocking by cache size'),
    ]


COMBOS: Dict[str, Combo] = {c.name: c for c in _combos()}


# --------------------------------------------------------------------- worker side
def _digest(*tensors) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def op_hashes(seed: int = 0, compiled: bool = True) -> Dict[str, str]:
    """sha256 of each operation's float32 outputs on fixed inputs (this process)."""
    import torch
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=gen)

    out = {}
    for name, (cin, cout, size, stride, dilation) in {
            'conv3x3': (16, 32, 32, 1, 1), 'conv3x3/s2': (32, 64, 32, 2, 1),
            'conv3x3/d2': (64, 64, 16, 1, 2), 'conv1x1': (64, 128, 16, 1, 1)}.items():
        x = randn(8, cin, size, size).requires_grad_()
        k = 1 if name == 'conv1x1' else 3
        w = randn(cout, cin, k, k).mul_(0.1).requires_grad_()
        y = F.conv2d(x, w, stride=stride, padding=dilation * (k // 2), dilation=dilation)
        y.backward(randn(*y.shape))
        out[name + ' fwd'] = _digest(y)
        out[name + ' bwd'] = _digest(x.grad, w.grad)
    logits = randn(8, 7, 32, 64)
    out['softmax'] = _digest(logits.softmax(1), logits.softmax(-1))
    out['log_softmax'] = _digest(logits.log_softmax(1), logits.log_softmax(-1))
    out['gelu'] = _digest(F.gelu(logits))
    out['sigmoid'] = _digest(logits.sigmoid())
    a, b, bias = randn(64, 256), randn(256, 96), randn(96)
    out['matmul'] = _digest(a @ b)
    out['addmm'] = _digest(torch.addmm(bias, a, b))
    bn = torch.nn.BatchNorm2d(7)
    x = logits.clone().requires_grad_()
    y = bn(x)
    (y * logits).sum().backward()
    out['batch_norm'] = _digest(y, x.grad, bn.weight.grad, bn.running_var)
    out['bilinear'] = _digest(F.interpolate(logits, size=(64, 128), mode='bilinear',
                                            align_corners=False))
    out['cross_entropy'] = _digest(F.cross_entropy(
        logits, torch.randint(0, 7, (8, 32, 64), generator=gen)))
    from mmdist.models.losses.dist_loss import _group_losses, dist_loss
    for activation in ('softmax', 'sigmoid'):
        z_s = randn(4096, 19).requires_grad_()
        z_t = randn(4096, 19)
        loss = dist_loss(z_s, z_t, activation=activation, compile=compiled)
        loss.backward()
        # MMDIST_COMPILE=0 (or a failed compilation) runs it eagerly: say which.
        ran_compiled = compiled and _group_losses.compiled is not None and not \
            _group_losses.failed
        out[f'DIST {activation} ' + ('compiled' if ran_compiled else 'eager')] = _digest(
            loss, z_s.grad)
    return out


def train_hashes(tasks: Sequence[str], iters: int, work_dir: str,
                 roles: Sequence[str] = ('student', 'dist')) -> Dict[str, str]:
    """sha256 of the data and of the weights after ``iters`` training iterations of the
    demo's ``roles`` (the student, the DIST student with a random teacher, ...) of each
    task, and the median CPU seconds per iteration after the first two
    (``... cpu s/iter``)."""
    sys.path.insert(0, ROOT)
    from demo.data import prepare_data
    from demo.paths import demo_config, load_tool
    from demo.tasks import TASKS

    out = {}
    for name in tasks:
        task = TASKS[name]
        data = prepare_data(task, osp.join(work_dir, name, 'data'), task.tiny_data)
        out[f'{name} data'] = data.fingerprint
        for role in roles:
            options = task.data_options(data.root) + task.schedule_options(iters) + [
                'model.teacher_ckpt=random-init'] * (role in ('kd', 'dist')) + [
                'default_hooks.logger.interval=1',
                f'visualizer.name=cpu_check_{name}_{role}_{time.time_ns()}']
            runner = load_tool('train').build_runner([
                demo_config(task.configs[role]), '--work-dir',
                osp.join(work_dir, name, role), '--cfg-options', *options])
            timer = IterationTimer()
            runner.register_hook(timer)
            runner.train()
            model = getattr(runner.model, 'student', runner.model)
            state = model.state_dict()
            out[f'{name} {role} x{iters}'] = _digest(*(state[k].float() for k in sorted(state)))
            out[f'{name} {role} cpu s/iter'] = timer.median()
            del runner, model
    return out


class IterationTimer(Hook):
    """CPU time of each training iteration (this process, all its threads): unlike the
    wall time, it does not count waiting for a core that other processes hold."""

    priority = 'LOWEST'

    def __init__(self) -> None:
        self.times: List[float] = []
        self.start = 0.0

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self.start = time.process_time()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.times.append(time.process_time() - self.start)

    def median(self) -> str:
        """Median of the iterations after the first two (warm-up, compilation)."""
        times = sorted(self.times[2:] or self.times)
        return f'{times[len(times) // 2]:.3f}'


def worker(args) -> None:
    """One combination, in this process: print the hashes as one JSON line."""
    sys.path.insert(0, ROOT)
    import torch

    from mmdist.utils.cpu_determinism import set_torch_pinning
    set_torch_pinning(args.threads, pin=args.pin)  # what the demo and the studies do
    if args.mkldnn is not None:
        torch.backends.mkldnn.enabled = args.mkldnn == 'on'
    if args.deterministic is not None:
        torch.use_deterministic_algorithms(args.deterministic == 'on')
    result = dict(capability=torch.backends.cpu.get_cpu_capability())
    start = time.monotonic()
    if not args.no_ops:
        result.update(op_hashes(compiled=not args.eager))
    if args.train:
        with tempfile.TemporaryDirectory() as tmp:
            result.update(train_hashes(args.train, args.iters, tmp, args.roles))
    result['seconds'] = f'{time.monotonic() - start:.1f}'
    print(MARK + json.dumps(result), flush=True)


# --------------------------------------------------------------------- parent side
def combo_env(combo: Combo, base: Dict[str, str]) -> Dict[str, str]:
    """The environment of ``combo``'s process: ``base`` without any of :data:`KNOBS`,
    plus the pinned variables (if pinned) and the combination's own."""
    sys.path.insert(0, ROOT)
    from mmdist.utils.cpu_determinism import PINNED_ENV
    env = {k: v for k, v in base.items() if k not in KNOBS}
    if combo.pinned:
        env.update(PINNED_ENV)
    env.update(combo.env)
    env['PYTHONPATH'] = os.pathsep.join([ROOT] + [p for p in [base.get('PYTHONPATH')] if p])
    return env


def run_combo(combo: Combo, train: Sequence[str] = (), iters: int = 3,
              roles: Sequence[str] = ('student', 'dist'), eager: bool = False,
              ops: bool = True) -> Dict[str, str]:
    """Hashes of ``combo``, from a fresh process."""
    cmd = [sys.executable, osp.abspath(__file__), '--worker', '--threads', str(combo.threads),
           '--iters', str(iters), '--roles', *roles]
    if combo.pinned:
        cmd.append('--pin')
    if combo.mkldnn is not None:
        cmd += ['--mkldnn', 'on' if combo.mkldnn else 'off']
    if combo.deterministic is not None:
        cmd += ['--deterministic', 'on' if combo.deterministic else 'off']
    if train:
        cmd += ['--train', *train]
    if eager:
        cmd.append('--eager')
    if not ops:
        cmd.append('--no-ops')
    # A cache of torch.compile's code of its own: inductor's on-disk cache does not key
    # every setting (ATEN_CPU_CAPABILITY), and code compiled for another one is wrong.
    with tempfile.TemporaryDirectory() as cache:
        env = dict(combo_env(combo, dict(os.environ)), TORCHINDUCTOR_CACHE_DIR=cache)
        proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f'combination {combo.name!r} failed (exit {proc.returncode}):\n'
                           f'{proc.stderr[-3000:]}')
    return json.loads(lines[-1][len(MARK):])


def differences(results: Dict[str, Dict[str, str]], combo: str, reference: str) -> List[str]:
    """Outputs (not timing, not the capability) where ``combo`` differs from ``reference``."""
    ref = results[reference]
    return [k for k, v in results[combo].items()
            if not _is_timing(k) and k != 'capability' and v != ref.get(k)]


def _is_timing(row: str) -> bool:
    return row == 'seconds' or row.endswith('s/iter')


def reference_of(combo: Combo) -> str:
    return 'host' if combo.group == 'unpinned' else (
        'three' if combo.group == 'three' else 'pinned')


def print_table(combos: Sequence[Combo], results: Dict[str, Dict[str, str]]) -> None:
    names = [c.name for c in combos]
    rows = [k for k in results[names[0]] if not _is_timing(k)]
    timings = [k for k in results[names[0]] if _is_timing(k)]
    width = max(len(r) for r in rows + timings) + 2
    print('columns:')
    for i, c in enumerate(combos):
        env = ' '.join(f'{k}={v}' for k, v in c.env.items())
        extra = [env] if env else []
        if c.pinned:
            extra.insert(0, 'pinned')
        if c.mkldnn is not None:
            extra.append(f'mkldnn {"on" if c.mkldnn else "off"}')
        if c.deterministic is not None:
            extra.append(f'deterministic {"on" if c.deterministic else "off"}')
        if c.threads != 1:
            extra.append(f'{c.threads} threads')
        print(f'  [{i}] {c.name} ({c.group}): {", ".join(extra) or "nothing set"}'
              + (f' — {c.note}' if c.note else ''))
    print()
    print(' ' * width + ' '.join(f'{f"[{i}]":>8}' for i in range(len(combos))))
    for row in rows:
        cells = []
        for c in combos:
            value = results[c.name].get(row, '-')
            same = row == 'capability' or value == results[reference_of(c)].get(row)
            cells.append(f'{value[:8]:>8}' if c.name == reference_of(c) or not same
                         else f'{"=":>8}')
        print(f'{row:<{width}}' + ' '.join(cells))
    for row in timings:
        print(f'{row:<{width}}' + ' '.join(f'{results[n].get(row, "-"):>8}' for n in names))
    print('\n("=": the same bits as the group\'s reference column: host, three or pinned)\n')
    for c in combos:
        ref = reference_of(c)
        if c.name == ref:
            continue
        diff = differences(results, c.name, ref)
        print(f'{c.name:<22} vs {ref:<7}: ' + ('identical' if not diff else
                                               f'differs in {", ".join(diff)}'))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--train', nargs='*', choices=['det', 'seg'], default=[],
                        help='also train the demo students of these tasks (tiny data)')
    parser.add_argument('--iters', type=int, default=3, help='training iterations')
    parser.add_argument('--roles', nargs='+', default=['student', 'dist'],
                        choices=['teacher', 'student', 'kd', 'dist'],
                        help='which demo configs --train trains (default: student dist)')
    parser.add_argument('--no-ops', action='store_true',
                        help='only --train (no single operations)')
    parser.add_argument('--combos', nargs='+', choices=list(COMBOS), default=list(COMBOS),
                        help='which combinations (default: all)')
    parser.add_argument('--eager', action='store_true',
                        help='the DIST loss without torch.compile')
    parser.add_argument('--json', help='also write the hashes to this file')
    parser.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--threads', type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument('--pin', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--mkldnn', choices=['on', 'off'], help=argparse.SUPPRESS)
    parser.add_argument('--deterministic', choices=['on', 'off'], help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> Dict[str, Dict[str, str]]:
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return {}
    combos = [COMBOS[n] for n in args.combos]
    for ref in {reference_of(c) for c in combos}:
        if ref not in args.combos:
            combos.insert(0, COMBOS[ref])
    results = {}
    for combo in combos:
        print(f'running {combo.name} ...', file=sys.stderr, flush=True)
        results[combo.name] = run_combo(combo, args.train, args.iters, args.roles, args.eager,
                                        not args.no_ops)
    print_table(combos, results)
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == '__main__':
    main()
