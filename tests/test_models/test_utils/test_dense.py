# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
import pytest
import torch

from mmdist.models.utils import dense_to_class_major, dense_to_rows


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


def test_class_major_columns_on_hand_built_levels():
    """Column r of dense_to_class_major is row r of the levels' anchor-major rows:
    levels in order, then (n, h, w, a) within a level."""
    shapes = [(2, 3, 4, 5, 6), (2, 3, 4, 2, 3), (2, 3, 4, 1, 1)]  # n, A, C, H, W
    maps = [hand_coded_map(*shape, level=level) for level, shape in enumerate(shapes)]
    columns = dense_to_class_major(maps, [3, 3, 3])
    assert columns.shape == (4, sum(n * a * h * w for n, a, _, h, w in shapes))
    column = 0
    for level, (n_img, num_anchors, num_classes, height, width) in enumerate(shapes):
        for n in range(n_img):
            for h in range(height):
                for w in range(width):
                    for a in range(num_anchors):
                        assert columns[:, column].tolist() == [
                            level * 100000 + n * 10000 + a * 1000 + c * 100 + h * 10 + w
                            for c in range(num_classes)
                        ]
                        column += 1
    # A segmentation map (one anchor) of one image is a pure reshape.
    x = torch.randn(1, 19, 4, 5)
    assert torch.equal(dense_to_class_major([x], [1]), x.reshape(19, 20))


def test_class_major_gradient():
    gen = torch.Generator().manual_seed(0)
    maps = [torch.randn(2, 6, 3, 4, generator=gen, dtype=torch.float64, requires_grad=True),
            torch.randn(2, 6, 1, 2, generator=gen, dtype=torch.float64, requires_grad=True)]
    assert torch.autograd.gradcheck(lambda *m: dense_to_class_major(m, [2, 2]), maps)
    # A gradient arriving as the transpose of a (rows, C) matrix (as from the losses).
    grad_rows = torch.randn(56, 3, generator=gen, dtype=torch.float64)
    dense_to_class_major(maps, [2, 2]).t().backward(grad_rows)
    expected = torch.cat([dense_to_rows(m, 2) for m in maps])
    for m, reference in zip(maps, torch.autograd.grad(expected, maps, grad_rows)):
        torch.testing.assert_close(m.grad, reference, rtol=0, atol=0)
    # Without gradients (the teacher's maps): the same copy, no autograd node.
    with_graph = dense_to_class_major(maps, [2, 2])
    with torch.no_grad():
        plain = dense_to_class_major(maps, [2, 2])
    assert with_graph.grad_fn is not None and plain.grad_fn is None
    assert torch.equal(plain, with_graph)


def test_class_major_errors():
    with pytest.raises(ValueError, match='different class counts'):
        dense_to_class_major([torch.zeros(1, 6, 2, 2), torch.zeros(1, 6, 2, 2)], [2, 3])
    with pytest.raises(ValueError, match='one num_anchors per map'):
        dense_to_class_major([torch.zeros(1, 6, 2, 2)], [2, 2])
    with pytest.raises(ValueError, match='A = 4'):
        dense_to_class_major([torch.zeros(1, 6, 2, 2)], [4])
