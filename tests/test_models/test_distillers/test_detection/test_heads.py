# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Head readers: the classification branch alone gives exactly the class scores of
mmdet's full head forward (for every supported family and layout), the box branch does
not run unless the scores need it, and heads that compute their scores otherwise run
their full forward."""
import numpy as np
import pytest
import torch
from mmdet.models.dense_heads import (ATSSHead, FCOSHead, GFLHead, RetinaHead, RTMDetHead,
                                      RTMDetSepBNHead, YOLOXHead)
from mmengine.registry import init_default_scope
from scipy import special

from mmdist.models.distillers.detection import head_reader
from mmdist.models.distillers.detection.heads import WHOLE_HEAD
from mmdist.models.distillers.detection.yolox import joint_logit

pytestmark = pytest.mark.usefixtures('one_cpu_thread')  # tests/conftest.py

ONE_ANCHOR = dict(anchor_generator=dict(type='AnchorGenerator', ratios=[1.0],
                                        octave_base_scale=8, scales_per_octave=1,
                                        strides=[8, 16, 32, 64, 128]))
POINTS = dict(anchor_generator=dict(type='MlvlPointGenerator', offset=0, strides=[8, 16, 32]),
              norm_cfg=dict(type='BN'))
GN = dict(norm_cfg=dict(type='GN', num_groups=4, requires_grad=True))
#: name -> (head class, extra kwargs, classifier attribute, box-branch modules).
HEADS = {
    'RetinaHead': (RetinaHead, GN, 'retina_cls'),
    'FCOSHead': (FCOSHead, GN, 'conv_cls'),
    'ATSSHead': (ATSSHead, dict(ONE_ANCHOR, **GN), 'atss_cls'),
    'GFLHead': (GFLHead, dict(ONE_ANCHOR, **GN), 'gfl_cls'),
    'RTMDetHead': (RTMDetHead, dict(POINTS, with_objectness=False), 'rtm_cls'),
    'RTMDetHead-objectness': (RTMDetHead, dict(POINTS, with_objectness=True), 'rtm_cls'),
    'RTMDetSepBNHead-shared': (RTMDetSepBNHead, dict(POINTS, share_conv=True,
                                                     with_objectness=False), 'rtm_cls'),
    'RTMDetSepBNHead-separate': (RTMDetSepBNHead, dict(POINTS, share_conv=False,
                                                       with_objectness=False), 'rtm_cls'),
    'RTMDetSepBNHead-objectness': (RTMDetSepBNHead, dict(POINTS, with_objectness=True),
                                   'rtm_cls'),
    'YOLOXHead': (YOLOXHead, dict(), 'multi_level_conv_cls'),
}


def build_head(head_type, **extra):
    init_default_scope('mmdet')
    torch.manual_seed(0)
    head = head_type(num_classes=3, in_channels=8, feat_channels=8, stacked_convs=2, **extra)
    for module in head.modules():  # scores that vary (mmdet's init makes them constant)
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.normal_(module.weight, std=0.3)
    return head.eval()


def features(head):
    gen = torch.Generator().manual_seed(1)
    sizes = [8, 4, 2, 1, 1][:head.prior_generator.num_levels]
    return [torch.randn(2, 8, size, size + 1, generator=gen) for size in sizes]


def box_branch(head):
    """The modules that only the box (and objectness) branch runs."""
    if isinstance(head, YOLOXHead):
        return list(head.multi_level_reg_convs) + list(head.multi_level_conv_reg)
    names = ('reg_convs', 'retina_reg', 'conv_reg', 'atss_reg', 'gfl_reg', 'rtm_reg')
    return [getattr(head, name) for name in names if hasattr(head, name)]


def calls(modules):
    seen = []
    for module in modules:
        for sub in module.modules():
            if isinstance(sub, torch.nn.Conv2d):
                sub.register_forward_hook(lambda *args: seen.append(1))
    return seen


@pytest.mark.parametrize('name', list(HEADS))
def test_class_branch_equals_full_head_forward(name):
    """score_logits (teacher side) = the head's own class scores: cls_scores of mmdet's
    forward, which for RTMDet with objectness already hold the objectness; for YOLOX
    'class' is cls_scores and 'joint' the logit of sigmoid(cls) * sigmoid(obj). The box
    branch runs only where the scores need it (objectness)."""
    head_type, extra, classifier = HEADS[name]
    head = build_head(head_type, **extra)
    reader = head_reader(head)
    assert reader is not WHOLE_HEAD and reader.head_type is head_type
    levels = list(range(head.prior_generator.num_levels))
    feats = features(head)
    box_calls = calls(box_branch(head))
    regressor_calls = calls([head.multi_level_conv_reg]) if reader.has_objectness else []
    with torch.no_grad():
        alone = {'class': reader.score_logits(head, feats, levels, 'class')}
        objectness_needed = getattr(head, 'with_objectness', False)
        assert bool(box_calls) == objectness_needed  # no box conv ran otherwise
        if reader.has_objectness:  # YOLOX 'joint': the box convs and conv_obj run
            alone['joint'] = reader.score_logits(head, feats, levels, 'joint')
            assert box_calls and not regressor_calls
        full = head(feats)
    for ours, mmdet in zip(alone['class'], full[0], strict=True):
        assert torch.equal(ours, mmdet)
    for level in levels:  # the classifier of a level maps cls_features to the logits
        expected = reader.classifier(head, level)(reader.cls_features(head, feats[level], level))
        classifier_module = getattr(head, classifier)
        if isinstance(classifier_module, torch.nn.ModuleList):
            assert reader.classifier(head, level) is classifier_module[level]
        if not objectness_needed:
            assert torch.equal(expected, alone['class'][level])
    if reader.has_objectness:
        for ours, cls_score, obj in zip(alone['joint'], full[0], full[2], strict=True):
            p = special.expit(cls_score.double().numpy()) * special.expit(obj.double().numpy())
            np.testing.assert_allclose(special.expit(ours.double().numpy()), p, rtol=2e-6)
        recorded = reader.output_logits(full, levels, 'joint')
        for a, b in zip(recorded, alone['joint']):
            assert torch.equal(a, b)


def test_separate_conv_weights_differ_per_level():
    """RTMDetSepBNHead(share_conv=False) has its own class convs per level, and the reader
    runs each level through its own (level 1 through level 0's convs gives other logits)."""
    head = build_head(RTMDetSepBNHead, **POINTS, share_conv=False, with_objectness=False)
    reader = head_reader(head)
    x = features(head)[1]
    with torch.no_grad():
        own = reader.cls_features(head, x, 1)
        other = reader.cls_features(head, x, 0)
    assert not torch.allclose(own, other)


def test_joint_logit_is_finite_for_saturated_scores():
    cls_score = torch.tensor([[-200.0, 0.0, 40.0, 200.0]], requires_grad=True)
    obj = torch.tensor([[200.0]], requires_grad=True)
    joint = joint_logit(cls_score, obj)
    joint.sum().backward()
    assert torch.isfinite(joint).all() and torch.isfinite(cls_score.grad).all()
    p = torch.sigmoid(joint.detach().double())
    np.testing.assert_allclose(p[0, :2].numpy(), special.expit([-200.0, 0.0]), rtol=1e-6)
    assert p[0, 3] == pytest.approx(1 - 1e-6, rel=1e-9, abs=1e-7)  # capped below 1


class ScaledRetinaHead(RetinaHead):
    """Computes its class logits otherwise than classifier(cls_convs(x))."""

    def forward_single(self, x):
        cls_score, bbox_pred = super().forward_single(x)
        return 2 * cls_score + bbox_pred.mean(1, keepdim=True), bbox_pred


def test_head_with_own_forward_runs_in_full():
    head = build_head(ScaledRetinaHead, **GN)
    reader = head_reader(head)
    assert reader is WHOLE_HEAD and not reader.cross_head
    feats = features(head)
    with torch.no_grad():
        ours = reader.score_logits(head, feats, range(5), 'class')
        expected = head(feats)[0]
        branch_only = head_reader(build_head(RetinaHead, **GN)).score_logits(
            head, feats, range(5), 'class')
    for a, b, wrong in zip(ours, expected, branch_only):
        assert torch.equal(a, b)
        assert not torch.allclose(a, wrong)
    assert head_reader(torch.nn.Conv2d(1, 1, 1)) is None
