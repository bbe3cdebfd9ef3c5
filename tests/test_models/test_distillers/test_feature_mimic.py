# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""FeatureMimic against a numpy computation of its formula."""
import numpy as np
import pytest
import torch

from mmdist.models.distillers.feature_mimic import FeatureMimic


def mimic_reference(connectors, student_feats, teacher_feats, loss_weight):
    """loss_weight * sum over levels of mean((W f_s + b - f_t)^2), 1x1 convs in numpy."""
    total = 0.0
    for connector, f_s, f_t in zip(connectors, student_feats, teacher_feats):
        weight = connector.weight.detach().double().numpy()[:, :, 0, 0]  # (C_t, C_s)
        bias = connector.bias.detach().double().numpy()
        mapped = np.einsum('ts,nshw->nthw', weight, f_s.double().numpy())
        total += np.mean((mapped + bias[None, :, None, None] - f_t.double().numpy())**2)
    return loss_weight * total


@pytest.mark.parametrize('loss_weight', [0.0, 1.0, 2.5])
def test_value_and_gradient_scale_with_loss_weight(loss_weight):
    torch.manual_seed(0)
    mimic = FeatureMimic(4, 6, num_levels=3, loss_weight=loss_weight)
    sizes = [(8, 10), (4, 5), (2, 3)]
    student = [torch.randn(2, 4, h, w, requires_grad=True) for h, w in sizes]
    teacher = [torch.randn(2, 6, h, w) for h, w in sizes]
    loss = mimic(student, teacher)
    expected = mimic_reference(mimic.connectors, [f.detach() for f in student], teacher,
                               loss_weight)
    assert loss.item() == pytest.approx(expected, rel=1e-6, abs=1e-12)
    assert mimic_reference(mimic.connectors, [f.detach() for f in student], teacher, 1.0) > 0.5
    # The gradient of the first level's student features, in closed form:
    # d/d f_s mean((W f_s + b - f_t)^2) = 2 W^T (W f_s + b - f_t) / numel.
    (grad, ) = torch.autograd.grad(loss, student[:1])
    weight = mimic.connectors[0].weight.detach()[:, :, 0, 0]
    residual = mimic.connectors[0](student[0]).detach() - teacher[0]
    reference = 2 * torch.einsum('ts,nthw->nshw', weight, residual) / residual.numel()
    torch.testing.assert_close(grad, loss_weight * reference, rtol=1e-5, atol=1e-8)


def test_negative_weight_and_level_mismatch_are_errors():
    with pytest.raises(ValueError, match='mimic.loss_weight'):
        FeatureMimic(4, 6, loss_weight=-1.0)
    mimic = FeatureMimic(4, 6, num_levels=2)
    with pytest.raises(ValueError, match=r'2 connectors \(mimic.num_levels\) but 1 student'):
        mimic([torch.zeros(1, 4, 2, 2)], [torch.zeros(1, 6, 2, 2)] * 2)
