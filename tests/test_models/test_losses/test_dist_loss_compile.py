# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""The DIST loss through ``torch.compile`` (inductor): the same values and gradients as
eager mode, no recompiles when sizes change, a fallback when compiling fails and the
switches that turn it off."""
import warnings

import numpy as np
import pytest
import torch
from scipy import special
from torch._dynamo.utils import counters

from mmdist.models.losses import DISTLoss, dist_loss
from mmdist.models.losses.dist_loss import _group_losses

#: Every option on: row groups (one empty, one without kept rows), weights, temperature,
#: both term weights, the KL anchor and the class threshold.
OPTIONS = dict(inter_loss_weight=0.7, intra_loss_weight=1.3, tau=2.0, kl_weight=0.3,
               intra_class_threshold=0.05)


@pytest.fixture(autouse=True)
def compiled(monkeypatch):
    monkeypatch.setenv('MMDIST_COMPILE', '1')
    yield
    assert not _group_losses.failed


def inputs(num_rows: int, seed: int = 0, num_classes: int = 19):
    gen = torch.Generator().manual_seed(seed)
    z_s = (torch.randn(num_rows, num_classes, generator=gen) * 2).requires_grad_()
    z_t = torch.randn(num_rows, num_classes, generator=gen) * 2
    weight = (torch.rand(num_rows, generator=gen) > 0.2).float()
    sizes = [num_rows // 2, 0, num_rows // 8, num_rows - num_rows // 2 - num_rows // 8]
    weight[num_rows // 2:num_rows // 2 + num_rows // 8] = 0  # a group without kept rows
    return z_s, z_t, weight, sizes


def loss_and_grad(z_s, z_t, weight, sizes, compile, **kwargs):
    loss = dist_loss(z_s, z_t, weight, groups=sizes, compile=compile, **kwargs)
    return loss.detach(), torch.autograd.grad(loss, z_s)[0]


@pytest.mark.parametrize('activation', ['softmax', 'sigmoid'])
def test_compiled_equals_eager_and_sizes_do_not_recompile(activation):
    """Compiled and eager values agree to 1e-6 (relative) and gradients to 1e-5; over
    six batch sizes at most two graphs are compiled (the first shapes, then symbolic
    sizes), none after the second size."""
    graphs = counters['stats']['unique_graphs']
    for step, num_rows in enumerate([1000, 1375, 613, 2048, 977, 1500]):
        z_s, z_t, weight, sizes = inputs(num_rows, seed=step)
        compiled = loss_and_grad(z_s, z_t, weight, sizes, True, activation=activation,
                                 **OPTIONS)
        eager = loss_and_grad(z_s, z_t, weight, sizes, False, activation=activation,
                              **OPTIONS)
        torch.testing.assert_close(compiled[0], eager[0], rtol=1e-6, atol=0)
        torch.testing.assert_close(compiled[1], eager[1], rtol=1e-5,
                                   atol=1e-6 * eager[1].abs().max().item())
        if step == 1:
            assert counters['stats']['unique_graphs'] - graphs <= 2
            graphs = counters['stats']['unique_graphs']
    assert counters['stats']['unique_graphs'] == graphs, 'recompiled for a new size'


def test_compiled_columns_keep_float32_precision_when_means_are_large():
    """As the eager test in test_dist_loss.py: probabilities near 0.99 with a spread of
    3e-4, rows sorted; the compiled intra term stays within 2e-6 of float64 numpy."""
    gen = torch.Generator().manual_seed(3)
    z_t = 5 + 0.05 * torch.randn(4000, 5, generator=gen, dtype=torch.float64)
    z_s = z_t + 0.02 * torch.randn(4000, 5, generator=gen, dtype=torch.float64)
    order = torch.argsort(z_t[:, 0])
    p_s, p_t = special.expit(z_s[order].numpy()), special.expit(z_t[order].numpy())
    x, y = p_s - p_s.mean(0), p_t - p_t.mean(0)
    expected = ((x * y).sum(0) / (np.sqrt((x * x).sum(0) * (y * y).sum(0)) + 1e-8)).mean()
    intra = dist_loss(z_s[order].float(), z_t[order].float(), activation='sigmoid',
                      inter_loss_weight=0.0)
    assert 1 - intra.item() == pytest.approx(expected, rel=0, abs=2e-6)


def assert_falls_back_with_one_warning(reason: str):
    """The first call warns (naming ``reason``) and gives the eager value; later calls
    are eager and silent."""
    z_s, z_t, weight, sizes = inputs(97, num_classes=7)
    expected = dist_loss(z_s, z_t, weight, groups=sizes, compile=False)
    with pytest.warns(UserWarning, match='(?s)torch.compile of mmdist _group_losses failed'
                      f'.*{reason}.*MMDIST_COMPILE=0'):
        assert dist_loss(z_s, z_t, weight, groups=sizes).item() == expected.item()
    assert _group_losses.failed
    with warnings.catch_warnings(record=True) as later:  # eager from now on, silently
        warnings.simplefilter('always')
        assert dist_loss(z_s, z_t, weight, groups=sizes).item() == expected.item()
    assert not later, [str(w.message) for w in later]


@pytest.fixture
def fresh_compile(monkeypatch):
    """Nothing compiled yet, and the fallback flag restored afterwards."""
    torch._dynamo.reset()
    monkeypatch.setattr(_group_losses, 'compiled', None)
    yield
    _group_losses.failed = False
    torch._dynamo.reset()


def test_no_cxx_compiler_falls_back_to_eager_with_one_warning(fresh_compile, monkeypatch,
                                                               tmp_path):
    """A real failure: inductor finds no working C++ compiler (empty caches, so it must
    compile)."""
    monkeypatch.setenv('TORCHINDUCTOR_CACHE_DIR', str(tmp_path))
    monkeypatch.setattr(torch._inductor.config.cpp, 'cxx', (str(tmp_path / 'no-g++'), ))
    monkeypatch.setattr(torch._inductor.config, 'fx_graph_cache', False)
    monkeypatch.setattr(torch._functorch.config, 'enable_autograd_cache', False)
    assert_falls_back_with_one_warning('No working C\\+\\+ compiler')


def test_torch_compile_unavailable_falls_back_to_eager(fresh_compile, monkeypatch):
    def unavailable(fn, **kwargs):
        raise RuntimeError('torch.compile is not supported on this Python')

    monkeypatch.setattr(torch, 'compile', unavailable)
    assert_falls_back_with_one_warning('not supported on this Python')


def test_errors_of_the_compiled_code_are_raised_not_hidden(fresh_compile, monkeypatch):
    """Running out of memory inside the compiled loss is the caller's error to see: no
    warning, no switch to eager for the rest of the run."""
    def compiled_code(fn, **kwargs):
        def run(*args):
            raise torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 2.00 GiB')
        return run

    monkeypatch.setattr(torch, 'compile', compiled_code)
    z_s, z_t, _, _ = inputs(50)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        with pytest.raises(torch.OutOfMemoryError, match='Tried to allocate'):
            dist_loss(z_s, z_t)
    assert not _group_losses.failed


def test_switches_turn_compiling_off(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError('torch.compile was called')

    monkeypatch.setattr(torch, 'compile', forbidden)
    monkeypatch.setattr(_group_losses, 'compiled', None)
    z_s, z_t, _, _ = inputs(50)
    DISTLoss(compile=False)(z_s, z_t)
    monkeypatch.setenv('MMDIST_COMPILE', '0')
    DISTLoss()(z_s, z_t)
