# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Confidence binning of the calibration errors against torchmetrics, on bin edges."""
import pytest
import torch
from torchmetrics.classification import BinaryCalibrationError, MulticlassCalibrationError

from mmdist.evaluation import SegFaithfulnessMetric
from mmdist.evaluation.metrics.functional import bin_index, calibration_error
from mmdist.testing._faithfulness import seg_sample


def ece_from_bins(conf: torch.Tensor, hit: torch.Tensor, num_bins: int) -> float:
    """mmdist's ECE: per-bucket sums of bin_index, then calibration_error."""
    index = bin_index(conf, num_bins)
    sums = [torch.bincount(index, weights=w, minlength=num_bins + 1).double().numpy()
            for w in (None, conf.double(), hit.double())]
    return calibration_error(*sums)


def test_bin_index_on_edges_and_at_one():
    """[i/B, (i+1)/B) -> i, an edge belongs to the bin it starts, exactly 1 -> B."""
    edges = torch.linspace(0, 1, 16)  # float32, as torchmetrics makes them
    conf = torch.cat([edges, torch.tensor([0.01, 0.5, 0.999])])
    expected = list(range(16)) + [0, 7, 14]
    assert bin_index(conf, 15).tolist() == expected
    assert bin_index(conf.double(), 15)[[0, 15]].tolist() == [0, 15]


@pytest.mark.parametrize('num_bins', [15, 10])
def test_ece_on_bin_edges_equals_torchmetrics(num_bins):
    """Confidences exactly on the bin edges and at 1.0 (where ``bucketize(right=False)``
    would put them one bin lower), mixed with confidences inside the bins."""
    edges = torch.linspace(0, 1, num_bins + 1)
    g = torch.Generator().manual_seed(0)
    inside = torch.rand(40, generator=g)
    conf = torch.cat([edges, edges[num_bins // 2:], torch.ones(5), inside])
    hit = (torch.rand(len(conf), generator=g) < conf).long()
    hit[-len(inside) - 5:-len(inside)] = torch.tensor([0, 0, 0, 1, 0])  # at 1.0: mostly wrong
    reference = float(BinaryCalibrationError(n_bins=num_bins, norm='l1')(conf, hit))
    assert ece_from_bins(conf, hit, num_bins) == pytest.approx(reference, abs=1e-6)
    # The edges matter here: a binning one bin lower for them gives another value.
    lower = (torch.bucketize(conf, edges, right=False) - 1).clamp(0, num_bins - 1)
    sums = [torch.bincount(lower, weights=w, minlength=num_bins).double().numpy()
            for w in (None, conf.double(), hit.double())]
    assert abs(calibration_error(*sums) - reference) > 0.01


def test_hand_computed_edge_cases():
    """15 bins. 7/15 (an edge, right) with 0.45 (bin 6, wrong) and 0.48 (bin 7, wrong):
    bins 6 and 7 give |0 - .45| + |1 - (7/15 + .48)|; 1.0 (wrong) is alone in its
    bucket and 0.96 (right) in bin 14: |0 - 1| + |1 - .96|. Mean over 5 samples."""
    conf = torch.tensor([torch.linspace(0, 1, 16)[7].item(), 0.45, 0.48, 1.0, 0.96])
    hit = torch.tensor([1, 0, 0, 0, 1])
    expected = (0.45 + abs(1 - (7 / 15 + 0.48)) + 1 + 0.04) / 5
    assert ece_from_bins(conf, hit, 15) == pytest.approx(expected, abs=1e-6)
    reference = float(BinaryCalibrationError(n_bins=15, norm='l1')(conf, hit))
    assert reference == pytest.approx(expected, abs=1e-6)


def test_segmentation_ece_with_confidence_one_equals_torchmetrics():
    """Pixels predicted with probability exactly 1 (softmax of logits 1e4 apart) next to
    confident pixels just below 1: SegFaithfulnessMetric's ECE is torchmetrics'."""
    num_classes = 3
    probs = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0],
                          [0.96, 0.02, 0.02], [0.97, 0.02, 0.01], [0.02, 0.95, 0.03],
                          [0.6, 0.3, 0.1], [0.15, 0.15, 0.7]])
    label = torch.tensor([1, 0, 2, 0, 0, 1, 1, 2])
    logits = torch.where(probs > 0, probs.clamp_min(1e-30).log(), torch.full_like(probs, -1e4))
    student = logits.T.reshape(num_classes, 1, -1)
    metric = SegFaithfulnessMetric()
    metric.process({}, [seg_sample(student, None, label.reshape(1, 1, -1))])
    result = metric.compute_metrics(metric.results)
    p = student.reshape(num_classes, -1).T.softmax(1)
    assert (p.max(1).values[:3] == 1.0).all()  # exactly 1, not rounded below
    reference = float(MulticlassCalibrationError(num_classes=num_classes, n_bins=15,
                                                 norm='l1')(p, label))
    assert result['ece_student'] == pytest.approx(reference, abs=1e-6)
    # Pixels at 1.0 binned with those in [14/15, 1) would give another ECE.
    conf, hit = p.max(1).values.double(), (p.argmax(1) == label).double()
    top = conf >= 14 / 15
    merged = (abs(hit[top].sum() - conf[top].sum()) + abs(hit[~top] - conf[~top]).sum()) / 8
    assert abs(float(merged) - reference) > 0.02  # 0.3475 vs 0.3775
