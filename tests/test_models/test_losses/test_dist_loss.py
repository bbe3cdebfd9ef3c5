# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""DISTLoss against an independent scipy reference and in every degenerate case.

Every test runs on both paths: eager, and traced by ``torch.compile`` (dynamo and
AOTAutograd, with the ``aot_eager`` backend: the graph ``torch.compile`` builds, run
without inductor's code generation, which costs seconds per graph on a CPU).
``test_dist_loss_compile.py`` checks inductor's compiled code against eager mode.
"""
import numpy as np
import pytest
import torch
from scipy import special, stats

from mmdist.models.losses import DISTLoss, dist_loss, dist_relations
from mmdist.models.losses.dist_loss import _group_losses
from mmdist.registry import MODELS


@pytest.fixture(autouse=True, params=['eager', 'traced'])
def path(request, monkeypatch):
    """Run the test eagerly, or traced; a traced run must not fall back to eager mode."""
    traced = request.param == 'traced'
    monkeypatch.setenv('MMDIST_COMPILE', '1' if traced else '0')
    monkeypatch.setattr(_group_losses, 'compiled',
                        torch.compile(_group_losses.fn, backend='aot_eager') if traced else None)
    with torch._dynamo.config.patch(recompile_limit=64, fail_on_recompile_limit_hit=True):
        yield request.param
    assert not _group_losses.failed


def pearson_eps(a, b, eps=1e-8):
    """The official correlation: scipy's Pearson r with ``eps`` added to the product of
    the centred vectors' norms (``cos(a - mean, b - mean)`` with ``+ eps``)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    norms = np.linalg.norm(a - a.mean()) * np.linalg.norm(b - b.mean())
    return stats.pearsonr(a, b)[0] * norms / (norms + eps)


def reference_dist(z_s, z_t, tau=1.0, w_inter=1.0, w_intra=1.0, activation='softmax',
                   keep=None):
    """DIST computed row by row and column by column with :func:`pearson_eps`."""
    z_s, z_t = np.asarray(z_s, np.float64), np.asarray(z_t, np.float64)
    if keep is not None:
        z_s, z_t = z_s[keep], z_t[keep]
    if activation == 'softmax':
        p_s, p_t = special.softmax(z_s / tau, axis=1), special.softmax(z_t / tau, axis=1)
    else:
        p_s, p_t = special.expit(z_s / tau), special.expit(z_t / tau)
    inter = 1 - np.mean([pearson_eps(a, b) for a, b in zip(p_s, p_t)])
    intra = 1 - np.mean([pearson_eps(a, b) for a, b in zip(p_s.T, p_t.T)])
    return tau**2 * (w_inter * inter + w_intra * intra)


def weighted_pearson_columns(p_s, p_t, w, eps=0.0):
    """Weighted Pearson correlation of each column, written out with numpy (``eps``
    added to the norms' product, as :func:`pearson_eps`)."""
    w = np.asarray(w, np.float64)[:, None]
    xs, xt = p_s - (w * p_s).sum(0) / w.sum(), p_t - (w * p_t).sum(0) / w.sum()
    return (w * xs * xt).sum(0) / (np.sqrt((w * xs**2).sum(0) * (w * xt**2).sum(0)) + eps)


@pytest.mark.parametrize('shape', [(7, 5), (64, 19), (300, 80), (3, 2)])
@pytest.mark.parametrize('activation', ['softmax', 'sigmoid'])
@pytest.mark.parametrize('tau', [1.0, 4.0])
def test_matches_scipy_reference(shape, activation, tau):
    gen = torch.Generator().manual_seed(0)
    z_s = torch.randn(shape, generator=gen) * 3
    z_t = torch.randn(shape, generator=gen) * 3
    expected = reference_dist(z_s.numpy(), z_t.numpy(), tau=tau, w_inter=0.7, w_intra=1.3,
                              activation=activation)
    loss = DISTLoss(inter_loss_weight=0.7, intra_loss_weight=1.3, tau=tau,
                    activation=activation, loss_weight=2.0)
    assert loss(z_s, z_t).item() == pytest.approx(2.0 * expected, rel=1e-4, abs=1e-5)


@pytest.mark.parametrize('tau', [1.0, 2.0])
def test_teacher_given_as_log_probabilities(tau):
    """Teacher probabilities p (here unnormalised scores, like Mask2Former's semantic map)
    passed as log p: the loss compares with p**(1/tau) / sum, no second softmax of p."""
    gen = torch.Generator().manual_seed(3)
    z_s = torch.randn(40, 6, generator=gen, dtype=torch.float64) * 2
    scores = torch.rand(40, 6, generator=gen, dtype=torch.float64) * 0.9 + 1e-3
    p_s = special.softmax(z_s.numpy() / tau, axis=1)
    p_t = scores.numpy()**(1 / tau) / (scores.numpy()**(1 / tau)).sum(1, keepdims=True)
    inter = 1 - np.mean([pearson_eps(a, b) for a, b in zip(p_s, p_t)])
    intra = 1 - np.mean([pearson_eps(a, b) for a, b in zip(p_s.T, p_t.T)])
    loss = dist_loss(z_s, scores.log(), tau=tau)
    assert loss.item() == pytest.approx(tau**2 * (inter + intra), rel=1e-10)


def test_inter_and_intra_terms_separately():
    gen = torch.Generator().manual_seed(1)
    z_s, z_t = torch.randn(20, 6, generator=gen), torch.randn(20, 6, generator=gen)
    only_inter = dist_loss(z_s, z_t, intra_loss_weight=0.0).item()
    only_intra = dist_loss(z_s, z_t, inter_loss_weight=0.0).item()
    assert only_inter == pytest.approx(reference_dist(z_s, z_t, w_intra=0.0), rel=1e-5)
    assert only_intra == pytest.approx(reference_dist(z_s, z_t, w_inter=0.0), rel=1e-5)


@pytest.mark.parametrize('activation', ['softmax', 'sigmoid'])
@pytest.mark.parametrize('weighted', [False, True])
def test_relations_match_scipy_and_loss_gradcheck(weighted, activation):
    """Each row and (weighted) column correlation against scipy / numpy; the loss's
    autograd gradient against finite differences (float64), with weights and groups."""
    gen = torch.Generator().manual_seed(2)
    z_s = torch.randn(7, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    z_t = torch.randn(7, 5, generator=gen, dtype=torch.float64)
    weight = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.5, 1.0, 2.0], dtype=torch.float64)
    weight = weight if weighted else torch.ones(7, dtype=torch.float64)
    act = (lambda z: special.softmax(z, axis=1)) if activation == 'softmax' else special.expit
    p_s, p_t = act(z_s.detach().numpy() / 2), act(z_t.numpy() / 2)
    rho_rows, rho_cols = dist_relations(torch.from_numpy(p_s), torch.from_numpy(p_t),
                                        weight[None], torch.zeros(7, dtype=torch.long), eps=0.0)
    np.testing.assert_allclose(rho_rows, [stats.pearsonr(a, b)[0] for a, b in zip(p_s, p_t)],
                               rtol=1e-10)
    expected_cols = (weighted_pearson_columns(p_s, p_t, weight) if weighted else
                     [stats.pearsonr(a, b)[0] for a, b in zip(p_s.T, p_t.T)])
    np.testing.assert_allclose(rho_cols[0], expected_cols, rtol=1e-10)
    # gradcheck backpropagates twice through one graph, which a traced backward that
    # reuses its saved buffers (the default) refuses.
    with torch._functorch.config.patch(donated_buffer=False):
        assert torch.autograd.gradcheck(
            lambda z: dist_loss(z, z_t, weight if weighted else None, tau=2.0,
                                groups=[3, 4], activation=activation, kl_weight=0.3), (z_s, ))


@pytest.mark.parametrize('weighted', [False, True])
def test_column_correlations_keep_float32_precision_when_means_are_large(weighted):
    """Columns of probabilities near 0.99 with a spread of 3e-4, rows sorted by value:
    the float32 intra term stays at the precision of the float32 probabilities
    themselves (6.7e-7 here), which sums of uncentred products (sum xy - n mean_x
    mean_y: off by 0.6) or a low-precision mean would lose."""
    gen = torch.Generator().manual_seed(3)
    z_t = 5 + 0.05 * torch.randn(4000, 5, generator=gen, dtype=torch.float64)
    z_s = z_t + 0.02 * torch.randn(4000, 5, generator=gen, dtype=torch.float64)
    order = torch.argsort(z_t[:, 0])
    z_s, z_t = z_s[order], z_t[order]
    weight = (torch.rand(4000, generator=gen, dtype=torch.float64) *
              (torch.rand(4000, generator=gen) > 0.3)) if weighted else torch.ones(4000)
    expected = weighted_pearson_columns(special.expit(z_s.numpy()),
                                        special.expit(z_t.numpy()), weight.numpy(), eps=1e-8)
    intra = dist_loss(z_s.float(), z_t.float(), weight.float() if weighted else None,
                      activation='sigmoid', inter_loss_weight=0.0)
    assert 1 - intra.item() == pytest.approx(expected.mean(), rel=0, abs=2e-6)


def test_gradient_matches_plain_autograd_formula():
    """The gradient equals autograd through the textbook formula (float32)."""
    gen = torch.Generator().manual_seed(12)
    z_s = torch.randn(300, 19, generator=gen, requires_grad=True)
    z_t = torch.randn(300, 19, generator=gen)
    weight = (torch.rand(300, generator=gen) > 0.3).float()

    def textbook(z):
        p_s, p_t = z.softmax(1), z_t.softmax(1)
        a, b = p_s - p_s.mean(1, keepdim=True), p_t - p_t.mean(1, keepdim=True)
        rho_r = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))
        keep = weight.bool()
        c, d = p_s[keep] - p_s[keep].mean(0), p_t[keep] - p_t[keep].mean(0)
        rho_c = (c * d).sum(0) / (c.norm(dim=0) * d.norm(dim=0))
        return (weight * (1 - rho_r)).sum() / weight.sum() + 1 - rho_c.mean()

    expected = torch.autograd.grad(textbook(z_s), z_s)[0]
    got = torch.autograd.grad(dist_loss(z_s, z_t, weight=weight), z_s)[0]
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize('activation', ['softmax', 'sigmoid'])
def test_identical_inputs_give_zero(activation):
    z = torch.randn(50, 10, generator=torch.Generator().manual_seed(3))
    assert dist_loss(z, z.clone(), activation=activation).item() == pytest.approx(0, abs=1e-5)


def test_row_permutation_invariance():
    gen = torch.Generator().manual_seed(4)
    z_s, z_t = torch.randn(40, 7, generator=gen), torch.randn(40, 7, generator=gen)
    perm = torch.randperm(40, generator=gen)
    assert dist_loss(z_s[perm], z_t[perm]).item() == pytest.approx(
        dist_loss(z_s, z_t).item(), rel=1e-6)


@pytest.mark.parametrize('activation', ['softmax', 'sigmoid'])
def test_mask_equals_kept_subset(activation):
    gen = torch.Generator().manual_seed(5)
    z_s, z_t = torch.randn(60, 9, generator=gen), torch.randn(60, 9, generator=gen)
    keep = torch.rand(60, generator=gen) > 0.4
    masked = dist_loss(z_s, z_t, weight=keep.float(), activation=activation)
    subset = dist_loss(z_s[keep], z_t[keep], activation=activation)
    assert masked.item() == pytest.approx(subset.item(), rel=1e-5)
    assert masked.item() == pytest.approx(
        reference_dist(z_s, z_t, activation=activation, keep=keep.numpy()), rel=1e-4)
    # Masked rows get no gradient.
    z_s = z_s.clone().requires_grad_()
    dist_loss(z_s, z_t, weight=keep.float(), activation=activation).backward()
    assert torch.all(z_s.grad[~keep] == 0)
    assert torch.any(z_s.grad[keep] != 0)


def test_teacher_is_detached():
    z_s = torch.randn(8, 5, requires_grad=True)
    z_t = torch.randn(8, 5, requires_grad=True)
    dist_loss(z_s, z_t).backward()
    assert z_t.grad is None and z_s.grad is not None


def _finite_loss_and_grad(z_s, z_t, **kwargs):
    z_s = z_s.clone().requires_grad_()
    loss = dist_loss(z_s, z_t, **kwargs)
    loss.backward()
    assert torch.isfinite(loss), loss
    assert torch.isfinite(z_s.grad).all()
    return loss


@pytest.mark.parametrize('activation', ['softmax', 'sigmoid'])
def test_degenerate_inputs_are_finite(activation):
    gen = torch.Generator().manual_seed(6)
    kw = dict(activation=activation)
    # A single row: the intra term has a single sample per column (rho = 0).
    loss = _finite_loss_and_grad(torch.randn(1, 5, generator=gen), torch.randn(1, 5), **kw)
    assert loss.item() >= 1.0 - 1e-6
    # Constant student rows, constant teacher rows, both constant.
    z = torch.randn(6, 5, generator=gen)
    _finite_loss_and_grad(torch.zeros(6, 5), z, **kw)
    _finite_loss_and_grad(z, torch.full((6, 5), 2.0), **kw)
    _finite_loss_and_grad(torch.ones(6, 5), torch.ones(6, 5), **kw)
    # Saturating logits.
    big = torch.randn(6, 5, generator=gen).sign() * 1e4
    _finite_loss_and_grad(big, -big, **kw)
    _finite_loss_and_grad(big, big.flip(0), **kw)
    # C = 1 and C = 2.
    _finite_loss_and_grad(torch.randn(6, 1, generator=gen), torch.randn(6, 1), **kw)
    _finite_loss_and_grad(torch.randn(6, 2, generator=gen), torch.randn(6, 2), **kw)


def _official_dist(p_s: np.ndarray, p_t: np.ndarray, eps: float = 1e-8) -> float:
    """The official DIST of (N, C) probabilities (DIST_KD ``dist_kd.py``), float64:
    1 - mean cos(a - mean(a), b - mean(b)) with ``cos = ab / (|a||b| + eps)``, over rows
    (inter) and over columns (intra)."""

    def relation(a, b):
        a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
        cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + eps)
        return 1 - cos.mean()

    return relation(p_s, p_t) + relation(p_s.T, p_t.T)


def test_near_constant_rows_and_columns_follow_the_official_eps():
    """Rows and columns whose centred norms' product is near eps (here 1e-9 to 1e-7):
    eps is added to that product, as the official code adds it, so the values agree."""
    gen = torch.Generator().manual_seed(3)
    p_t = torch.rand(6, 5, generator=gen, dtype=torch.float64) * 1e-3 + 0.1
    p_t[:, 2] = 0.3 + torch.rand(6, generator=gen, dtype=torch.float64) * 1e-7
    p_s = torch.rand(6, 5, generator=gen, dtype=torch.float64) * 1e-4 + 0.1
    p_s[1] = 0.2 + torch.rand(5, generator=gen, dtype=torch.float64) * 1e-6
    z_s, z_t = torch.logit(p_s), torch.logit(p_t)  # sigmoid gives back p exactly enough
    expected = _official_dist(p_s.numpy(), p_t.numpy())
    ours = dist_loss(z_s, z_t, activation='sigmoid').item()
    pearson_only = _official_dist(p_s.numpy(), p_t.numpy(), eps=0.0)
    assert abs(pearson_only / expected - 1) > 1e-3  # eps matters in this case
    assert ours == pytest.approx(expected, rel=1e-9)


def test_constant_rows_have_zero_correlation():
    """A constant student row (s_xx = 0) has rho = s_xy / eps = 0, so its inter term
    is 1; the other rows match scipy."""
    gen = torch.Generator().manual_seed(9)
    z_s, z_t = torch.randn(5, 4, generator=gen), torch.randn(5, 4, generator=gen)
    z_s[2] = 0.5
    p_s, p_t = special.softmax(z_s.numpy(), 1), special.softmax(z_t.numpy(), 1)
    rho = [0.0 if i == 2 else pearson_eps(p_s[i], p_t[i]) for i in range(5)]
    inter = dist_loss(z_s, z_t, intra_loss_weight=0.0).item()
    assert inter == pytest.approx(1 - np.mean(rho), rel=1e-5)


def test_all_rows_masked_gives_graph_connected_zero():
    z_s = torch.randn(5, 4, requires_grad=True)
    loss = dist_loss(z_s, torch.randn(5, 4), weight=torch.zeros(5))
    assert loss.item() == 0.0
    assert loss.requires_grad
    loss.backward()
    assert torch.all(z_s.grad == 0)


def test_no_rows_is_a_clear_error():
    with pytest.raises(ValueError, match=r'no rows \(N = 0\)'):
        DISTLoss()(torch.zeros(0, 5), torch.zeros(0, 5))


def test_softmax_two_classes_inter_term_has_no_signal():
    # Two softmax probabilities (p, 1 - p) correlate to +-1 with any other such row,
    # so the inter-class term is 0 or 2 per row and has (numerically) no gradient.
    z_s = torch.tensor([[0.3, -0.2], [1.0, 2.0]], requires_grad=True)
    z_t = torch.tensor([[1.0, 0.0], [0.0, -1.0]])
    inter = dist_loss(z_s, z_t, intra_loss_weight=0.0)
    assert inter.item() == pytest.approx(1.0, abs=1e-5)  # rows: rho = +1 and -1
    inter.backward()
    assert z_s.grad.abs().max().item() < 1e-4


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_low_precision_inputs_compute_in_float32(dtype):
    gen = torch.Generator().manual_seed(7)
    z_s, z_t = torch.randn(30, 6, generator=gen), torch.randn(30, 6, generator=gen)
    z_s_low, z_t_low = z_s.to(dtype), z_t.to(dtype)
    loss = dist_loss(z_s_low, z_t_low)
    assert loss.dtype == torch.float32
    expected = reference_dist(z_s_low.float(), z_t_low.float())
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        z = z_s.clone().requires_grad_()
        logits = z @ torch.eye(6)  # matmul output is bf16 under autocast
        loss = dist_loss(logits, z_t)
    assert logits.dtype == torch.bfloat16 and loss.dtype == torch.float32
    assert loss.item() == pytest.approx(reference_dist(logits.float().detach(), z_t),
                                        rel=1e-5)
    loss.backward()
    assert torch.isfinite(z.grad).all()


def test_build_from_registry_and_bad_arguments():
    loss = MODELS.build(dict(type='mmdist.DISTLoss', tau=2.0, activation='sigmoid'))
    assert isinstance(loss, DISTLoss) and loss.tau == 2.0 and loss.activation == 'sigmoid'
    from mmengine.registry import MODELS as ROOT_MODELS
    assert isinstance(ROOT_MODELS.build(dict(type='mmdist.DISTLoss')), DISTLoss)
    with pytest.raises(ValueError, match='loss_weight must be >= 0'):
        DISTLoss(loss_weight=-1)
    with pytest.raises(ValueError, match='tau must be > 0'):
        DISTLoss(tau=0)
    with pytest.raises(TypeError, match="tau must be a number, got 'abc'"):
        DISTLoss(tau='abc')
    with pytest.raises(TypeError, match='compile must be True or False'):
        DISTLoss(compile='no')
    with pytest.raises(ValueError, match='activation must be one of'):
        DISTLoss(activation='relu')
    with pytest.raises(ValueError, match=r'shape \(N, C\)'):
        DISTLoss()(torch.randn(4, 3), torch.randn(4, 5))
    with pytest.raises(ValueError, match=r'weight must have shape \(N,\)'):
        DISTLoss()(torch.randn(4, 3), torch.randn(4, 3), weight=torch.ones(3))


# ---------------------------------------------------------------- options for weak DIST
def test_kl_anchor_adds_weighted_kd():
    gen = torch.Generator().manual_seed(21)
    z_s, z_t = torch.randn(40, 6, generator=gen), torch.randn(40, 6, generator=gen)
    weight = (torch.arange(40) % 4 != 0).float()
    keep = weight.bool().numpy()
    p_s, p_t = special.softmax(z_s.numpy() / 2, 1), special.softmax(z_t.numpy() / 2, 1)
    kl = np.mean([stats.entropy(t, s) for s, t in zip(p_s[keep], p_t[keep])])
    plain = dist_loss(z_s, z_t, weight=weight, tau=2.0).item()
    anchored = dist_loss(z_s, z_t, weight=weight, tau=2.0, kl_weight=0.5).item()
    assert anchored - plain == pytest.approx(4.0 * 0.5 * kl, rel=1e-5)


def test_class_aware_intra_term_leaves_absent_classes_out():
    gen = torch.Generator().manual_seed(22)
    z_s, z_t = torch.randn(50, 5, generator=gen), torch.randn(50, 5, generator=gen) * 0.5
    z_t[:, 3] = -30.0  # class 3 never predicted by the teacher in this batch
    p_s, p_t = special.expit(z_s.numpy()), special.expit(z_t.numpy())
    rho = [pearson_eps(a, b) for a, b in zip(p_s.T, p_t.T)]
    expected_intra = 1 - np.mean([r for c, r in enumerate(rho) if c != 3])
    got = dist_loss(z_s, z_t, activation='sigmoid', inter_loss_weight=0.0,
                    intra_class_threshold=0.01).item()
    assert got == pytest.approx(expected_intra, rel=1e-5)
    # Threshold above every teacher probability: no class present, intra term 0.
    assert dist_loss(z_s, z_t, activation='sigmoid', inter_loss_weight=0.0,
                     intra_class_threshold=1.0).item() == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match='intra_class_threshold must be None or in'):
        DISTLoss(intra_class_threshold=2.0)
    with pytest.raises(ValueError, match='kl_weight must be >= 0'):
        DISTLoss(kl_weight=-1)


def grouped_inputs(seed: int):
    """Group sizes [7, 0, 4, 3, 2] (an empty group), float64 (16, 4) student logits
    (requiring grad) and teacher logits, and row weights with two rows of the first group
    and every row of the fourth group left out."""
    gen = torch.Generator().manual_seed(seed)
    z_s = torch.randn(16, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    z_t = torch.randn(16, 4, generator=gen, dtype=torch.float64) * 2
    weight = torch.ones(16, dtype=torch.float64)
    weight[[1, 5]] = 0
    weight[11:14] = 0  # the fourth group: no row kept
    return [7, 0, 4, 3, 2], z_s, z_t, weight


@pytest.mark.parametrize('activation', ['softmax', 'sigmoid'])
@pytest.mark.parametrize('options', [{}, {'kl_weight': 0.5, 'intra_class_threshold': 0.3}])
def test_groups_equal_one_call_per_group(activation, options):
    """`groups` (e.g. FPN levels in one call) gives the sum of one call per group: value
    and gradient, with a group whose rows all have weight 0 and an empty group."""
    sizes, z_s, z_t, weight = grouped_inputs(seed=5)
    kwargs = dict(activation=activation, inter_loss_weight=0.7, **options)
    grouped = dist_loss(z_s, z_t, weight, groups=sizes, **kwargs)
    (grad_grouped, ) = torch.autograd.grad(grouped, z_s)
    separate = sum(  # the reference: eager calls
        dist_loss(s, t, w, compile=False, **kwargs) for s, t, w, n in zip(
            z_s.split(sizes), z_t.split(sizes), weight.split(sizes), sizes) if n)
    (grad_separate, ) = torch.autograd.grad(separate, z_s)
    assert grouped.item() == pytest.approx(separate.item(), rel=1e-12)
    torch.testing.assert_close(grad_grouped, grad_separate, rtol=1e-10, atol=1e-12)
    # The fourth group adds exactly nothing: scipy reference of the other groups' sum.
    if not options:
        keep = weight.numpy() > 0
        expected, offset = 0.0, 0
        for n in sizes:
            rows = slice(offset, offset + n)
            offset += n
            if n and keep[rows].any():
                expected += reference_dist(z_s.detach().numpy()[rows], z_t.numpy()[rows],
                                           w_inter=0.7, activation=activation,
                                           keep=keep[rows])
        assert grouped.item() == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize('activation', ['softmax', 'sigmoid'])
@pytest.mark.parametrize('options', [{}, {'kl_weight': 0.5, 'intra_class_threshold': 0.3,
                                          'tau': 2.0}])
def test_reduce_groups_false_gives_each_groups_loss(activation, options):
    """`reduce_groups=False` returns the (G,) loss of each group: each equal to one call
    on that group (0 for an empty group and one without kept rows), with the gradient of
    any weighting of them; their sum is the reduced loss."""
    sizes, z_s, z_t, weight = grouped_inputs(seed=6)
    kwargs = dict(activation=activation, intra_loss_weight=0.8, **options)
    per_group = DISTLoss(loss_weight=0.5, **kwargs)(z_s, z_t, weight, groups=sizes,
                                                    reduce_groups=False)
    assert per_group.shape == (5, )
    head_weights = torch.tensor([1.0, 2.0, 0.4, 3.0, -1.5], dtype=torch.float64)
    (grad, ) = torch.autograd.grad(per_group @ head_weights, z_s)
    separate, expected_grad = [], torch.zeros_like(z_s)
    for group, (s, t, w) in enumerate(zip(z_s.split(sizes), z_t.split(sizes),
                                          weight.split(sizes))):
        if not len(s):
            separate.append(0.0)
            continue
        loss = 0.5 * dist_loss(s, t, w, compile=False, **kwargs)  # the reference: eager
        separate.append(loss.item())
        expected_grad += head_weights[group] * torch.autograd.grad(loss, z_s)[0]
    np.testing.assert_allclose(per_group.detach().numpy(), separate, rtol=1e-10, atol=1e-12)
    assert per_group[1].item() == per_group[3].item() == 0.0
    torch.testing.assert_close(grad, expected_grad, rtol=1e-10, atol=1e-12)
    if not options:  # and each group's value against the scipy reference on its kept rows
        keep, offset = weight.numpy() > 0, 0
        for group, n in enumerate(sizes):
            rows = slice(offset, offset + n)
            offset += n
            if n and keep[rows].any():
                expected = 0.5 * reference_dist(z_s.detach().numpy()[rows], z_t.numpy()[rows],
                                                w_intra=0.8, activation=activation,
                                                keep=keep[rows])
                assert per_group[group].item() == pytest.approx(expected, rel=1e-9)
    reduced = DISTLoss(loss_weight=0.5, **kwargs)(z_s, z_t, weight, groups=sizes)
    assert reduced.item() == pytest.approx(per_group.sum().item(), rel=1e-12)


def test_bad_groups_are_rejected():
    z = torch.randn(6, 3)
    for groups in ([2, 3], [7, -1], []):
        with pytest.raises(ValueError, match='groups must be non-negative sizes .* N = 6'):
            DISTLoss()(z, z, groups=groups)
