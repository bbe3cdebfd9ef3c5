# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""DIST loss: mmdist's implementation vs the reference formulation, side by side.

    python tools/analysis_tools/benchmark_dist_loss.py [--repeat 5] [--scales coco ...]

Scales: ``coco`` and ``cityscapes`` (N, C) logit matrices, and ``cityscapes_maps``: the
Cityscapes logits as (B, C, H, W) maps, which each side flattens inside the timed pass
(the official code with permute + reshape, mmdist as its segmentation distiller does).
For each scale it checks that both give the same value (1e-5) and gradient, then measures
forward+backward time (median of --repeat runs, interleaved, after warming the allocator
as a training process would) and the peak extra memory of one forward+backward (resident
memory above the inputs, each measured in a fresh subprocess), and prints the ratios
reference / mmdist.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

from mmdist.testing.memory import extra_peak_bytes

#: (rows, classes, activation, logit map shape or None) of each scale: the two (N, C)
#: matrices the issue names, and the Cityscapes logits as a segmentation head gives them.
SCALES = {
    # RetinaNet on COCO: about 270k anchors (all FPN levels of a 2-image batch) x 80 classes.
    'coco': (270_000, 80, 'sigmoid', None),
    # Cityscapes logits at 1/8 of 1024x2048: 2 x 128 x 256 pixels x 19 classes.
    'cityscapes': (2 * 128 * 256, 19, 'softmax', None),
    # The same as (2, 19, 128, 256) maps, each side turning them into its (N, C) input
    # inside the timed pass: the official code with permute + reshape, mmdist as its
    # segmentation distiller does (class-major rows).
    'cityscapes_maps': (2 * 128 * 256, 19, 'softmax', (2, 19, 128, 256)),
}


def reference_dist(z_s, z_t, activation, tau=1.0, eps=1e-8):
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


def reference_dist_maps(m_s, m_t, activation):
    """The reference on (B, C, H, W) logit maps, flattened as the official code does."""
    return reference_dist(m_s.permute(0, 2, 3, 1).reshape(-1, m_s.shape[1]),
                          m_t.permute(0, 2, 3, 1).reshape(-1, m_t.shape[1]), activation)


def mmdist_dist(z_s, z_t, activation):
    from mmdist.models.losses import dist_loss
    return dist_loss(z_s, z_t, activation=activation)


def mmdist_dist_maps(m_s, m_t, activation):
    """mmdist on (B, C, H, W) logit maps, as ``SegmentationDistiller`` calls it."""
    from mmdist.models.utils.dense import dense_to_class_major
    return mmdist_dist(dense_to_class_major([m_s], [1]).t(),
                       dense_to_class_major([m_t], [1]).t(), activation)


#: (N, C) matrices and (B, C, H, W) maps.
IMPLEMENTATIONS = {
    False: {'reference': reference_dist, 'mmdist': mmdist_dist},
    True: {'reference': reference_dist_maps, 'mmdist': mmdist_dist_maps},
}


def make_inputs(scale, seed=0):
    rows, classes, _, maps = SCALES[scale]
    gen = torch.Generator().manual_seed(seed)
    shape = maps or (rows, classes)
    z_s = (torch.randn(shape, generator=gen) * 2).requires_grad_()
    z_t = torch.randn(shape, generator=gen) * 2
    return z_s, z_t


def step(impl, z_s, z_t, activation):
    z_s.grad = None
    loss = IMPLEMENTATIONS[z_s.dim() == 4][impl](z_s, z_t, activation)
    loss.backward()
    return loss


def measure_peak(impl, scale):
    """Run in a fresh process: peak resident memory of one fwd+bwd above the inputs."""
    activation = SCALES[scale][2]
    z_s, z_t = make_inputs(scale)
    z_s.grad = torch.zeros_like(z_s)  # the gradient buffer belongs to the inputs
    step(impl, z_s, z_t, activation)  # warm-up (allocator, lazy init)
    z_s.grad = torch.zeros_like(z_s)
    return dict(extra_peak=extra_peak_bytes(lambda: step(impl, z_s, z_t, activation)))


def warm_allocator():
    """Allocate and free one 31 MiB block, as a training process has long done before
    its loss runs. glibc then serves 5 MB temporaries from its heap instead of mapping
    fresh pages for every one (about 5 300 page faults per reference pass at Cityscapes
    scale otherwise), so the timing does not depend on the process's history."""
    block = torch.empty(31 << 20, dtype=torch.uint8)
    del block


def compare(scale, repeat):
    rows, classes, activation, _ = SCALES[scale]
    z_s, z_t = make_inputs(scale)
    values, grads = {}, {}
    for impl in ('reference', 'mmdist'):
        values[impl] = step(impl, z_s, z_t, activation).item()
        grads[impl] = z_s.grad.clone()
    diff = abs(values['mmdist'] - values['reference'])
    grad_diff = (grads['mmdist'] - grads['reference']).abs().max().item()
    grad_scale = grads['reference'].abs().max().item()
    times = {impl: [] for impl in values}
    for _ in range(repeat):
        for impl in values:  # interleaved, so load changes hit both alike
            start = time.perf_counter()
            step(impl, z_s, z_t, activation)
            times[impl].append(time.perf_counter() - start)
    median = {impl: statistics.median(t) for impl, t in times.items()}
    memory = {}
    for impl in values:
        # A fixed mmap threshold makes glibc return every freed block above 64 KiB to the
        # OS at once, so resident memory follows live tensors instead of the heap cache.
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536')
        out = subprocess.run([sys.executable, __file__, '--peak', impl, scale],
                             capture_output=True, text=True, check=True, env=env)
        memory[impl] = json.loads(out.stdout.strip().splitlines()[-1])['extra_peak']
    return dict(scale=scale, rows=rows, classes=classes, activation=activation,
                value_mmdist=values['mmdist'], value_reference=values['reference'],
                value_diff=diff, grad_max_diff=grad_diff, grad_max=grad_scale,
                time_mmdist=median['mmdist'], time_reference=median['reference'],
                mem_mmdist=memory['mmdist'], mem_reference=memory['reference'])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--scales', nargs='+', default=list(SCALES), choices=list(SCALES))
    parser.add_argument('--peak', nargs=2, metavar=('IMPL', 'SCALE'), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peak:
        print(json.dumps(measure_peak(*args.peak)))
        return
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, '
          f'{os.cpu_count()} cores')
    header = (f'{"scale":<16}{"rows x C":>14} {"act":<8}{"|dL|":>9}{"|dgrad|":>9}'
              f'{"t ref":>9}{"t ours":>9}{"speed-up":>9}{"mem ref":>10}{"mem ours":>10}'
              f'{"mem ratio":>10}')
    print(header)
    warm_allocator()
    for scale in args.scales:
        r = compare(scale, args.repeat)
        print(f'{scale:<16}{r["rows"]:>9} x {r["classes"]:<3} {r["activation"]:<8}'
              f'{r["value_diff"]:>9.1e}{r["grad_max_diff"] / r["grad_max"]:>9.1e}'
              f'{r["time_reference"] * 1e3:>7.0f}ms{r["time_mmdist"] * 1e3:>7.0f}ms'
              f'{r["time_reference"] / r["time_mmdist"]:>8.2f}x'
              f'{r["mem_reference"] / 2**20:>8.0f}MB{r["mem_mmdist"] / 2**20:>8.0f}MB'
              f'{r["mem_mmdist"] / max(r["mem_reference"], 1):>10.2f}')
        assert r['value_diff'] <= 1e-5, f'{scale}: values differ by {r["value_diff"]}'


if __name__ == '__main__':
    main()
