# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""The per-head logit units of the segmentation distiller against mmseg's own inference."""
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from torch import nn

from mmdist.models.distillers.seg_head_logits import (ClassifierLogits, Mask2FormerLogits,
                                                      head_logits)
from mmdist.testing._segmentation import shrink_seg_model

pytestmark = pytest.mark.usefixtures('one_cpu_thread')


def tiny_model(base: str):
    from mmseg.registry import MODELS
    cfg = Config.fromstring(f'_base_ = [{base!r}]\n', '.py')
    shrink_seg_model(cfg, 8)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmseg'):
        return MODELS.build(cfg.model).eval()


@pytest.fixture(scope='module')
def mask2former():
    return tiny_model('mmseg::mask2former/mask2former_r50_8xb2-90k_cityscapes-512x1024.py')


def test_mask2former_log_semantic_map_is_mmseg_semantic_inference(mask2former):
    """softmax of the unit's logits at the input size = mmseg's ``predict`` semantic map
    normalised over classes (so no second softmax of probabilities), same argmax."""
    from mmseg.structures import SegDataSample
    unit = head_logits(mask2former.decode_head, 'teacher_cfg model.decode_head')
    assert isinstance(unit, Mask2FormerLogits)
    inputs = torch.randn(2, 3, 32, 64)
    with torch.no_grad():
        outputs = unit.teacher_outputs(mask2former.extract_feat(inputs))
        logits = unit.logits(outputs, (32, 64), align_corners=True)  # ignored, as by mmseg
        metas = dict(img_shape=(32, 64), pad_shape=(32, 64), ori_shape=(32, 64))
        predictions = mask2former.predict(inputs, [SegDataSample(metainfo=metas) for _ in range(2)])
    assert outputs[0].shape == (2, 4, 20) and outputs[1].shape == (2, 4, 8, 16)  # 1/4
    semantic = torch.stack([p.seg_logits.data for p in predictions])
    assert logits.shape == semantic.shape == (2, 19, 32, 64)
    torch.testing.assert_close(logits.softmax(1), semantic / semantic.sum(1, keepdim=True),
                               rtol=1e-5, atol=1e-7)
    predicted = torch.stack([p.pred_sem_seg.data[0] for p in predictions])
    assert torch.equal(logits.argmax(1), predicted)
    # The identity softmax(log S) = S / sum S holds to float64 rounding.
    s64 = semantic.double()
    torch.testing.assert_close(s64.log().softmax(1), s64 / s64.sum(1, keepdim=True),
                               rtol=1e-12, atol=1e-15)


def test_mask2former_logits_stay_finite_when_masks_underflow(mask2former):
    unit = Mask2FormerLogits(mask2former.decode_head, 'key')
    cls_scores = torch.randn(1, 4, 20)
    masks = torch.full((1, 4, 2, 2), -1e4)  # sigmoid underflows to 0
    logits = unit.logits((cls_scores, masks), (2, 2), False)
    assert torch.isfinite(logits).all()
    torch.testing.assert_close(logits.softmax(1), torch.full((1, 19, 2, 2), 1 / 19))


def test_classifier_logits_resize_only_when_sizes_differ():
    head = nn.Module()
    head.conv_seg, head.out_channels = nn.Conv2d(4, 3, 1), 3
    unit = head_logits(head, 'key')
    assert isinstance(unit, ClassifierLogits) and unit.student_module('key') is head.conv_seg
    logits = torch.randn(2, 3, 4, 8)
    assert unit.logits(logits, (4, 8), False) is logits
    pooled = unit.logits(logits, (2, 4), False)  # half-pixel centres: 2 x 2 means
    torch.testing.assert_close(pooled, logits.reshape(2, 3, 2, 2, 4, 2).mean((3, 5)))


def test_unsupported_heads_and_mask2former_students_are_refused(mask2former):
    with pytest.raises(TypeError, match=r'^teacher_cfg model.decode_head: Module has no '
                       r'`conv_seg` classifier.*Mask2FormerHead \(teachers\)'):
        head_logits(nn.Module(), 'teacher_cfg model.decode_head')
    unit = head_logits(mask2former.decode_head, 'model.student.decode_head')
    with pytest.raises(TypeError, match=r'^model.student.decode_head: Mask2FormerHead is '
                       'supported as a teacher only'):
        unit.student_module('model.student.decode_head')
