# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""KDLoss against scipy's entropy (KL divergence)."""
import numpy as np
import pytest
import torch
from scipy import special, stats

from mmdist.models.losses import KDLoss, kd_loss_per_row
from mmdist.registry import MODELS


def reference_kd_rows(z_s, z_t, tau, activation):
    z_s, z_t = np.asarray(z_s, np.float64) / tau, np.asarray(z_t, np.float64) / tau
    if activation == 'softmax':
        p_s, p_t = special.softmax(z_s, axis=1), special.softmax(z_t, axis=1)
        kl = [stats.entropy(t, s) for s, t in zip(p_s, p_t)]
    else:
        p_s, p_t = special.expit(z_s), special.expit(z_t)
        kl = [sum(stats.entropy([t, 1 - t], [s, 1 - s]) for s, t in zip(rs, rt))
              for rs, rt in zip(p_s, p_t)]
    return tau**2 * np.asarray(kl)


@pytest.mark.parametrize('activation', ['softmax', 'sigmoid'])
@pytest.mark.parametrize('tau', [1.0, 3.0])
def test_matches_scipy(activation, tau):
    gen = torch.Generator().manual_seed(0)
    z_s, z_t = torch.randn(25, 6, generator=gen) * 2, torch.randn(25, 6, generator=gen) * 2
    rows = reference_kd_rows(z_s, z_t, tau, activation)
    loss = KDLoss(tau=tau, activation=activation, loss_weight=0.5)
    assert loss(z_s, z_t).item() == pytest.approx(0.5 * rows.mean(), rel=1e-5)
    assert loss(z_s, z_t, reduction_override='sum').item() == pytest.approx(
        0.5 * rows.sum(), rel=1e-5)
    np.testing.assert_allclose(
        loss(z_s, z_t, reduction_override='none').numpy(), 0.5 * rows, rtol=1e-4, atol=1e-6)
    weight = (torch.arange(25) % 3 != 0).float()
    assert loss(z_s, z_t, weight=weight).item() == pytest.approx(
        0.5 * rows[weight.bool().numpy()].mean(), rel=1e-5)
    assert loss(z_s, z_t, weight=weight, avg_factor=4.0).item() == pytest.approx(
        0.5 * rows[weight.bool().numpy()].sum() / 4.0, rel=1e-5)


@pytest.mark.parametrize('activation', ['softmax', 'sigmoid'])
def test_degenerate_inputs(activation):
    loss = KDLoss(activation=activation)
    z = torch.randn(4, 3)
    assert loss(z, z.clone()).item() == pytest.approx(0.0, abs=1e-6)
    big = (torch.randn(4, 3).sign() * 1e4).requires_grad_()
    value = loss(big, -big.detach())
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(big.grad).all()
    masked = torch.randn(4, 3, requires_grad=True)
    value = loss(masked, z, weight=torch.zeros(4))
    assert value.item() == 0.0 and value.requires_grad


def test_build_and_errors():
    assert isinstance(MODELS.build(dict(type='mmdist.KDLoss', tau=4.0)), KDLoss)
    with pytest.raises(ValueError, match='reduction must be one of'):
        KDLoss(reduction='avg')
    with pytest.raises(ValueError, match='reduction_override must be one of'):
        KDLoss()(torch.randn(2, 3), torch.randn(2, 3), reduction_override='avg')
    with pytest.raises(ValueError, match='loss_weight must be >= 0'):
        KDLoss(loss_weight=-0.1)


def test_groups_sum_the_per_group_means():
    gen = torch.Generator().manual_seed(3)
    z_s, z_t = torch.randn(9, 4, generator=gen), torch.randn(9, 4, generator=gen)
    weight = torch.tensor([1., 0., 1., 1., 1., 0., 0., 1., 1.])
    sizes = [3, 4, 2]
    rows = reference_kd_rows(z_s, z_t, 2.0, 'sigmoid')
    expected, offset = 0.0, 0
    for n in sizes:
        w = weight.numpy()[offset:offset + n]
        expected += (w * rows[offset:offset + n]).sum() / w.sum()
        offset += n
    loss = KDLoss(tau=2.0, activation='sigmoid', loss_weight=3.0)
    assert loss(z_s, z_t, weight, groups=sizes).item() == pytest.approx(3 * expected,
                                                                        rel=1e-5)
    # 'sum' does not depend on the groups; avg_factor has no meaning per group.
    assert loss(z_s, z_t, weight, groups=sizes, reduction_override='sum').item() == \
        pytest.approx(3 * (weight.numpy() * rows).sum(), rel=1e-5)
    with pytest.raises(ValueError, match='avg_factor and groups'):
        loss(z_s, z_t, weight, avg_factor=2.0, groups=sizes)
    with pytest.raises(ValueError, match='add up to N = 9'):
        loss(z_s, z_t, groups=[3, 3])


def test_float64_logits_are_computed_in_float64():
    """1e-12 agreement with scipy needs float64 math (float32 gives about 1e-7)."""
    gen = torch.Generator().manual_seed(4)
    z_s = torch.randn(20, 5, generator=gen, dtype=torch.float64)
    z_t = torch.randn(20, 5, generator=gen, dtype=torch.float64)
    rows = kd_loss_per_row(z_s, z_t, tau=2.0)
    assert rows.dtype == torch.float64
    np.testing.assert_allclose(rows.numpy(), reference_kd_rows(z_s, z_t, 2.0, 'softmax'),
                               rtol=1e-12)


def test_no_rows_is_a_clear_error():
    with pytest.raises(ValueError, match=r'no rows \(N = 0\)'):
        KDLoss()(torch.zeros(0, 5), torch.zeros(0, 5))
