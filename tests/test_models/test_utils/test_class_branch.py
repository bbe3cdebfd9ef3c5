# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""The classification branch alone gives exactly the class logits of mmdet's full head
forward, and heads that compute them otherwise run their full forward."""
import pytest
import torch
from mmdet.models.dense_heads import ATSSHead, FCOSHead, GFLHead, RetinaHead
from mmengine.registry import init_default_scope

from mmdist.models.utils.class_branch import classifier_name, dense_class_logits

HEADS = {
    'RetinaHead': (RetinaHead, dict(), 'retina_cls'),
    'FCOSHead': (FCOSHead, dict(), 'conv_cls'),
    'ATSSHead': (ATSSHead, dict(anchor_generator=dict(
        type='AnchorGenerator', ratios=[1.0], octave_base_scale=8, scales_per_octave=1,
        strides=[8, 16, 32, 64, 128])), 'atss_cls'),
    'GFLHead': (GFLHead, dict(anchor_generator=dict(
        type='AnchorGenerator', ratios=[1.0], octave_base_scale=8, scales_per_octave=1,
        strides=[8, 16, 32, 64, 128])), 'gfl_cls'),
}


def build_head(head_type, **extra):
    init_default_scope('mmdet')
    torch.manual_seed(0)
    head = head_type(num_classes=3, in_channels=8, feat_channels=8, stacked_convs=2,
                     norm_cfg=dict(type='GN', num_groups=4, requires_grad=True), **extra)
    return head.eval()


def features():
    gen = torch.Generator().manual_seed(1)
    return [torch.randn(2, 8, size, size + 1, generator=gen) for size in (8, 4, 2, 1, 1)]


@pytest.mark.parametrize('name', list(HEADS))
def test_class_branch_equals_full_head_forward(name):
    head_type, extra, classifier = HEADS[name]
    head = build_head(head_type, **extra)
    assert classifier_name(head) == classifier
    feats = features()
    reg_calls = []
    for conv in head.reg_convs:
        conv.register_forward_hook(lambda *args: reg_calls.append(1))
    with torch.no_grad():
        alone = dense_class_logits(head, feats, classifier)
        assert not reg_calls  # the box branch did not run
        full = head(feats)[0]
        assert len(reg_calls) == 5 * 2  # it does in the full forward
    assert len(alone) == len(full) == 5
    for ours, mmdet in zip(alone, full):
        assert torch.equal(ours, mmdet)


class ScaledRetinaHead(RetinaHead):
    """Computes its class logits otherwise than classifier(cls_convs(x))."""

    def forward_single(self, x):
        cls_score, bbox_pred = super().forward_single(x)
        return 2 * cls_score + bbox_pred.mean(1, keepdim=True), bbox_pred


def test_head_with_own_forward_runs_in_full():
    head = build_head(ScaledRetinaHead)
    assert classifier_name(head) is None
    feats = features()
    with torch.no_grad():
        ours = dense_class_logits(head, feats, classifier_name(head))
        expected = head(feats)[0]
        branch_only = dense_class_logits(head, feats, 'retina_cls')
    for a, b, wrong in zip(ours, expected, branch_only):
        assert torch.equal(a, b)
        assert not torch.allclose(a, wrong)
