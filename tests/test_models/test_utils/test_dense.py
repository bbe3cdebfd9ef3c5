# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
import pytest
import torch

from mmdist.models.utils import dense_to_rows


def hand_coded_map(n_img, num_anchors, num_classes, height, width, level=0):
    """Every entry encodes its own (level, n, a, c, h, w) as the digits of one integer."""
    codes = torch.zeros(n_img, num_anchors * num_classes, height, width, dtype=torch.long)
    for n in range(n_img):
        for a in range(num_anchors):
            for c in range(num_classes):
                for h in range(height):
                    for w in range(width):
                        codes[n, a * num_classes + c, h, w] = (
                            level * 100000 + n * 10000 + a * 1000 + c * 100 + h * 10 + w)
    return codes


def test_anchor_major_rows_on_hand_built_tensor():
    n_img, num_anchors, num_classes, height, width = 2, 3, 4, 5, 6
    codes = hand_coded_map(n_img, num_anchors, num_classes, height, width)
    rows = dense_to_rows(codes, num_anchors)
    assert rows.shape == (n_img * height * width * num_anchors, num_classes)
    row = 0
    for n in range(n_img):
        for h in range(height):
            for w in range(width):
                for a in range(num_anchors):
                    for c in range(num_classes):
                        assert rows[row, c].item() == (
                            n * 10000 + a * 1000 + c * 100 + h * 10 + w)
                    row += 1


def test_plain_dense_map():
    x = torch.randn(2, 19, 4, 5)
    rows = dense_to_rows(x)
    assert torch.equal(rows[7], x[0, :, 1, 2])  # row 7 = (n=0, h=1, w=2)


def test_errors():
    with pytest.raises(ValueError, match='cannot be split'):
        dense_to_rows(torch.zeros(1, 10, 2, 2), num_anchors=3)
    with pytest.raises(ValueError, match=r'\(N, A\*C, H, W\)'):
        dense_to_rows(torch.zeros(10, 4))
