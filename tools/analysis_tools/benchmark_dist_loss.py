# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""DIST loss: mmdist vs the official formulation (eager and compiled), side by side.

    python tools/analysis_tools/benchmark_dist_loss.py [--device cuda] [--amp bf16]
        [--repeat 30] [--scales coco cityscapes ...]

For each scale (an (N, C) logit matrix as a training step gives it) it checks that mmdist
and the official formulation give the same value and gradient, then times forward +
backward (median of --repeat interleaved runs, after warm-up runs that also compile) of:

- ``official``: the official DIST code's formulation, eager;
- ``official compiled``: the same through ``torch.compile``;
- ``mmdist``: ``mmdist.models.losses.dist_loss`` as the distillers call it (compiled
  unless ``MMDIST_COMPILE=0``);
- ``mmdist eager``: the same with ``compile=False`` (the fallback path);

and the peak memory of one forward + backward above the inputs (CUDA: the allocator's
peak; CPU: resident memory, each in a fresh process) of ``official`` and ``mmdist``. It
prints official / mmdist and official compiled / mmdist (speed-ups) and mmdist / official
(memory). With ``--amp`` the logits are in that dtype and each pass runs under autocast,
as a head's logits are in mixed-precision training.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

#: (rows, classes, activation) of each scale.
SCALES = {
    # RetinaNet on COCO: all FPN levels of a 2-image batch (about 270k anchors), 80 classes.
    'coco': (270_000, 80, 'sigmoid'),
    # The same for 8 images.
    'coco_8img': (1_080_000, 80, 'sigmoid'),
    # Cityscapes logits at 1/8 of 1024 x 2048 (the d8 heads), 2 images, 19 classes.
    'cityscapes': (2 * 128 * 256, 19, 'softmax'),
    # Cityscapes logits at full resolution, 2 images.
    'cityscapes_full': (2 * 512 * 1024, 19, 'softmax'),
    # The sampled RoIs of a Faster R-CNN batch (2 x 512), 80 classes + background.
    'roi': (1024, 81, 'softmax'),
    # An ImageNet batch of 256 images.
    'imagenet': (256, 1000, 'softmax'),
}
#: What the default run covers on each device (the CPU skips the largest matrices).
DEFAULT_SCALES = {'cpu': ['coco', 'cityscapes', 'roi', 'imagenet'], 'cuda': list(SCALES)}
AMP_DTYPES = {'fp16': torch.float16, 'bf16': torch.bfloat16}
IMPLEMENTATIONS = ('official', 'official compiled', 'mmdist', 'mmdist eager')


def official_dist(z_s, z_t, activation, tau=1.0, eps=1e-8):
    """The formulation of the official DIST code, written out here as the baseline:
    probabilities, centre, cosine similarity over rows, then the same on the transpose."""

    def cosine_similarity(a, b):
        return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + eps)

    def pearson_correlation(a, b):
        return cosine_similarity(a - a.mean(1).unsqueeze(1), b - b.mean(1).unsqueeze(1))

    act = torch.sigmoid if activation == 'sigmoid' else (lambda x: x.softmax(dim=1))
    p_s, p_t = act(z_s / tau), act(z_t / tau)
    inter = 1 - pearson_correlation(p_s, p_t).mean()
    intra = 1 - pearson_correlation(p_s.transpose(0, 1), p_t.transpose(0, 1)).mean()
    return tau**2 * (inter + intra)


def make_impls():
    from mmdist.models.losses import dist_loss
    return {
        'official': official_dist,
        'official compiled': torch.compile(official_dist),
        'mmdist': lambda z_s, z_t, activation: dist_loss(z_s, z_t, activation=activation),
        'mmdist eager': lambda z_s, z_t, activation: dist_loss(
            z_s, z_t, activation=activation, compile=False),
    }


def make_inputs(scale, device, amp):
    rows, classes, _ = SCALES[scale]
    gen = torch.Generator(device=device).manual_seed(0)
    dtype = AMP_DTYPES.get(amp, torch.float32)
    z_s = (torch.randn(rows, classes, generator=gen, device=device) * 2).to(dtype)
    z_t = (torch.randn(rows, classes, generator=gen, device=device) * 2).to(dtype)
    return z_s.requires_grad_(), z_t


def step(fn, z_s, z_t, activation, amp):
    z_s.grad = None
    with torch.autocast(z_s.device.type, dtype=AMP_DTYPES.get(amp), enabled=amp is not None):
        loss = fn(z_s, z_t, activation)
    loss.backward()
    return loss


def synchronize(device):
    if device == 'cuda':
        torch.cuda.synchronize()


def peak_memory(impl, scale, device, amp):
    """Peak memory of one fwd + bwd above the inputs and their gradient buffer (CUDA:
    allocator peak in this process; CPU: resident memory, run in a fresh process)."""
    if device == 'cpu':
        # glibc then returns every freed block above 64 KiB to the OS at once, so resident
        # memory follows live tensors instead of the heap cache.
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536')
        out = subprocess.run([sys.executable, __file__, '--peak', impl, scale] +
                             (['--amp', amp] if amp else []),
                             capture_output=True, text=True, check=True, env=env)
        return json.loads(out.stdout.strip().splitlines()[-1])['extra_peak']
    fn = make_impls()[impl]
    z_s, z_t = make_inputs(scale, device, amp)
    activation = SCALES[scale][2]
    step(fn, z_s, z_t, activation, amp)  # warm-up: compile, gradient buffer
    synchronize(device)
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    step(fn, z_s, z_t, activation, amp)
    synchronize(device)
    return torch.cuda.max_memory_allocated() - base


def cpu_peak(impl, scale, amp):
    """Run in a fresh process: resident peak of one CPU fwd + bwd above the inputs."""
    from memory import extra_peak_bytes  # tools/analysis_tools/memory.py
    fn = make_impls()[impl]
    z_s, z_t = make_inputs(scale, 'cpu', amp)
    activation = SCALES[scale][2]
    step(fn, z_s, z_t, activation, amp)  # warm-up: compile, gradient buffer
    return extra_peak_bytes(lambda: step(fn, z_s, z_t, activation, amp))


def compare(scale, device, amp, repeat):
    activation = SCALES[scale][2]
    impls = make_impls()
    z_s, z_t = make_inputs(scale, device, amp)
    values, grads, compile_s = {}, {}, {}
    for name, fn in impls.items():  # first calls (compiling), then one warm call
        start = time.perf_counter()
        values[name] = step(fn, z_s, z_t, activation, amp).item()
        compile_s[name] = time.perf_counter() - start
        step(fn, z_s, z_t, activation, amp)
        grads[name] = z_s.grad.float().clone()
    times = {name: [] for name in impls}
    for _ in range(repeat):
        for name, fn in impls.items():  # interleaved, so load changes hit all alike
            synchronize(device)
            start = time.perf_counter()
            step(fn, z_s, z_t, activation, amp)
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    ref_grad = grads['official']
    return dict(
        value_diff=abs(values['mmdist'] - values['official']),
        grad_diff=(grads['mmdist'] - ref_grad).abs().max().item() / ref_grad.abs().max().item(),
        time={name: statistics.median(t) for name, t in times.items()},
        first_call=compile_s,
        memory={name: peak_memory(name, scale, device, amp) for name in ('official', 'mmdist')})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--amp', choices=list(AMP_DTYPES), help='logits in this dtype, '
                        'passes under autocast')
    parser.add_argument('--repeat', type=int, default=None,
                        help='timed runs per implementation (default 5 on CPU, 30 on CUDA)')
    parser.add_argument('--scales', nargs='+', choices=list(SCALES))
    parser.add_argument('--peak', nargs=2, metavar=('IMPL', 'SCALE'), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peak:
        print(json.dumps(dict(extra_peak=cpu_peak(*args.peak, args.amp))))
        return
    repeat = args.repeat or (30 if args.device == 'cuda' else 5)
    device_name = (torch.cuda.get_device_name() if args.device == 'cuda' else
                   f'CPU, {torch.get_num_threads()} threads, {os.cpu_count()} cores')
    print(f'torch {torch.__version__}, {device_name}, {args.amp or "fp32"}, median of '
          f'{repeat}; MMDIST_COMPILE={os.environ.get("MMDIST_COMPILE", "1 (default)")}')
    print(f'{"scale":<16}{"rows x C":>14} {"act":<8}{"|dL|":>9}{"|dgrad|":>9}'
          f'{"official":>10}{"off.comp":>10}{"mmdist":>10}{"mm.eager":>10}'
          f'{"off/mm":>8}{"offc/mm":>8}{"mem off":>10}{"mem mm":>10}{"mem ratio":>10}')
    for scale in args.scales or DEFAULT_SCALES[args.device]:
        rows, classes, activation = SCALES[scale]
        r = compare(scale, args.device, args.amp, repeat)
        t, m = r['time'], r['memory']
        print(f'{scale:<16}{rows:>9} x {classes:<4}{activation:<8}'
              f'{r["value_diff"]:>9.1e}{r["grad_diff"]:>9.1e}' +
              ''.join(f'{t[name] * 1e3:>8.2f}ms' for name in IMPLEMENTATIONS) +
              f'{t["official"] / t["mmdist"]:>7.2f}x{t["official compiled"] / t["mmdist"]:>7.2f}x'
              f'{m["official"] / 2**20:>8.1f}MB{m["mmdist"] / 2**20:>8.1f}MB'
              f'{m["mmdist"] / max(m["official"], 1):>10.2f}')
        print(f'{"":<16}first calls (compile): ' +
              ', '.join(f'{name} {s:.1f} s' for name, s in r['first_call'].items()))
        if args.amp is None:  # in fp32 both compute the same function
            assert r['value_diff'] <= 1e-5, f'{scale}: values differ by {r["value_diff"]}'


if __name__ == '__main__':
    main()
