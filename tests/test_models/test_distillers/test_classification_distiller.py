# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""ClassificationDistiller: teacher inputs (incl. Mixup/CutMix), loss, modes, errors."""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope, init_default_scope

from mmdist.models.distillers import ClassificationDistiller
from mmdist.models.utils.teacher import RANDOM_TEACHER
from mmdist.registry import MODELS
from mmdist.testing._classification import (CLASSES, TEACHER_MEAN, TEACHER_STD,
                                            make_imagenet_shapes, write_classification_configs)
from mmdist.testing._detection import write_config
from mmdist.testing._segmentation import shrink_segmentor

pytestmark = pytest.mark.usefixtures('one_cpu_thread')

#: mmpretrain's ImageNet normalisation (RGB), which the shipped student configs use.
STUDENT_MEAN = [123.675, 116.28, 103.53]
STUDENT_STD = [58.395, 57.12, 57.375]
#: Training samples of four different classes (4 images per class folder, in order).
SAMPLES = (0, 4, 9, 14)


@pytest.fixture(scope='module')
def cls(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('imagenet_shapes'))
    make_imagenet_shapes(root)
    return write_classification_configs(str(tmp_path_factory.mktemp('cls')), root)


def build(cfg_path, **options):
    """Build the config's model as the Runner does; ``options`` are dotted config keys."""
    cfg = Config.fromfile(cfg_path)
    cfg.merge_from_dict(options)
    cfg.model.setdefault('data_preprocessor', cfg.data_preprocessor)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(cfg.model), cfg


def raw_batch(cfg):
    """Four collated training samples (uint8 BGR images, labels) of different classes."""
    init_default_scope('mmpretrain')
    from mmpretrain.registry import DATASETS
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    return pseudo_collate([dataset[i] for i in SAMPLES])


def normalise(raw, mean, std) -> torch.Tensor:
    """Reference preprocessing: BGR uint8 -> RGB float, (x - mean) / std, per channel."""
    images = torch.stack(raw['inputs']).float().flip(1)
    return (images - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def labels_of(raw) -> torch.Tensor:
    return torch.cat([sample.gt_label for sample in raw['data_samples']])


class Spy(torch.nn.Module):
    """Records what the distillation loss receives and returns a graph-connected zero."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, student_logits, teacher_logits):
        self.calls.append((student_logits.detach(), teacher_logits.detach()))
        return student_logits.sum() * 0


def capture_input(module):
    """Forward pre-hook keeping the first positional input of every call of ``module``."""
    seen = []
    handle = module.register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach()))
    return seen, handle


def dist_reference(z_s, z_t, tau, inter_weight, intra_weight) -> float:
    """DIST from its definition with numpy's Pearson correlation (np.corrcoef)."""
    def softmax(z):
        e = np.exp(z / tau - (z / tau).max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    p_s, p_t = softmax(z_s.double().numpy()), softmax(z_t.double().numpy())
    inter = 1 - np.mean([np.corrcoef(p_s[i], p_t[i])[0, 1] for i in range(len(p_s))])
    intra = 1 - np.mean([np.corrcoef(p_s[:, c], p_t[:, c])[0, 1] for c in range(p_s.shape[1])])
    return tau**2 * (inter_weight * inter + intra_weight * intra)


def test_losses_finite_gradients_reach_the_student_only(cls):
    model, cfg = build(cls['config'])
    assert isinstance(model, ClassificationDistiller)
    model.train()
    assert not any(m.training for m in model.teacher.modules())
    data = model.data_preprocessor(raw_batch(cfg), True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss', 'loss_dist_cls'}
    assert torch.isfinite(losses['loss']) and torch.isfinite(losses['loss_dist_cls'])
    assert losses['loss_dist_cls'] > 0
    losses['loss_dist_cls'].backward()
    assert model.student.head.fc.weight.grad.abs().sum() > 0
    assert model.student.backbone.conv1.weight.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in model.teacher.parameters())
    teacher_params = {id(p) for p in model.teacher.parameters()}
    assert not any(id(p) in teacher_params for p in model.parameters())
    assert not any(k.startswith('teacher') for k in model.state_dict())


def test_teacher_runs_on_its_own_normalisation_and_loss_is_dist(cls):
    """Teacher input = the raw batch in the teacher config's top-level normalisation;
    loss_dist_cls = DIST (tau 2, intra weight 0.5) of the two networks' logits."""
    model, cfg = build(cls['config'], **{
        'model.loss_cls': dict(tau=2.0, intra_loss_weight=0.5, loss_weight=0.5)})
    assert not model.teacher_input_adapter.identity
    model.train()
    raw = raw_batch(cfg)
    data = model.data_preprocessor(copy.deepcopy(raw), True)
    torch.testing.assert_close(data['inputs'], normalise(raw, STUDENT_MEAN, STUDENT_STD))
    seen, handle = capture_input(model.teacher.backbone)
    losses = model(**data, mode='loss')
    handle.remove()
    teacher_input = normalise(raw, TEACHER_MEAN, TEACHER_STD)
    (captured, ) = seen
    torch.testing.assert_close(captured, teacher_input, rtol=1e-5, atol=1e-5)

    with torch.no_grad():
        z_t = model.teacher(teacher_input, mode='tensor')
        z_s = model.student(data['inputs'], mode='tensor')  # train mode: same batch stats
    expected = 0.5 * dist_reference(z_s, z_t, tau=2.0, inter_weight=1.0, intra_weight=0.5)
    assert losses['loss_dist_cls'].item() == pytest.approx(expected, rel=1e-4)
    # The student's own loss is untouched: cross-entropy of its logits and the labels.
    assert losses['loss'].item() == pytest.approx(
        F.cross_entropy(z_s, labels_of(raw)).item(), rel=1e-4)


def test_bgr_teacher_gets_the_batch_in_bgr(cls, tmp_path):
    """A teacher preprocessing with to_rgb=False sees the same images in BGR order."""
    bgr = str(tmp_path / 'teacher_bgr.py')
    with open(bgr, 'w', encoding='utf-8') as f:
        f.write(f"_base_ = [{cls['teacher_cfg']!r}]\ndata_preprocessor = dict(to_rgb=False)\n")
    model, cfg = build(cls['config'], **{'model.teacher_cfg': bgr,
                                         'model.teacher_ckpt': RANDOM_TEACHER})
    raw = raw_batch(cfg)
    data = model.data_preprocessor(copy.deepcopy(raw), True)
    ours = model.teacher_inputs(data['inputs'], data['data_samples'])
    # Reference: the raw BGR images, normalised with the teacher's (RGB-ordered) constants
    # applied to BGR channels, exactly as its own preprocessor would with to_rgb=False.
    images = torch.stack(raw['inputs']).float()
    mean = torch.tensor(TEACHER_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(TEACHER_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(ours, (images - mean) / std, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize('augment', ['Mixup', 'CutMix'])
def test_batch_augments_teacher_sees_the_same_mixed_images(cls, monkeypatch, augment):
    """With mixing ratio 0.3, partner order PERM (and for CutMix the box BOX), the teacher's
    input equals the raw batch in the teacher's normalisation mixed the same way."""
    perm, lam, box = torch.tensor([2, 0, 3, 1]), 0.3, (4, 20, 8, 28)
    model, cfg = build(cls['config'], **{
        'model.student.train_cfg': dict(augments=[dict(type=augment, alpha=1.0)])})
    model.train()
    mixer = model.data_preprocessor.batch_augments.augments[0]
    assert type(mixer).__name__ == augment
    raw = raw_batch(cfg)
    with monkeypatch.context() as patch:
        patch.setattr(np.random, 'beta', lambda a, b: lam)
        patch.setattr(torch, 'randperm', lambda n: perm)
        if augment == 'CutMix':
            # correct_lam: the label weight is the unmasked area, 1 - 16 * 20 / 32^2
            patch.setattr(mixer, 'cutmix_bbox_and_lam',
                          lambda shape, lam_: (box, 1 - 16 * 20 / 32**2))
        data = model.data_preprocessor(copy.deepcopy(raw), True)

    def mix(batch):
        if augment == 'Mixup':
            return lam * batch + (1 - lam) * batch[perm]
        (y1, y2, x1, x2), out = box, batch.clone()
        out[:, :, y1:y2, x1:x2] = batch[perm][:, :, y1:y2, x1:x2]
        return out

    student_input = normalise(raw, STUDENT_MEAN, STUDENT_STD)
    torch.testing.assert_close(data['inputs'], mix(student_input))
    assert not torch.allclose(data['inputs'], student_input)
    onehot = F.one_hot(labels_of(raw), len(CLASSES)).float()
    weight = lam if augment == 'Mixup' else 1 - 16 * 20 / 32**2
    torch.testing.assert_close(torch.stack([s.gt_score for s in data['data_samples']]),
                               weight * onehot + (1 - weight) * onehot[perm])

    model.loss_cls = Spy()
    seen, handle = capture_input(model.teacher.backbone)
    losses = model(**data, mode='loss')
    handle.remove()
    teacher_input = mix(normalise(raw, TEACHER_MEAN, TEACHER_STD))
    torch.testing.assert_close(seen[0], teacher_input, rtol=1e-5, atol=1e-5)
    (_, t_logits), = model.loss_cls.calls
    with torch.no_grad():
        torch.testing.assert_close(t_logits, model.teacher(teacher_input, mode='tensor'),
                                   rtol=1e-4, atol=1e-5)
    assert torch.isfinite(losses['loss'])  # the student's loss on the soft (mixed) labels


def test_predict_and_tensor_are_the_student_alone(cls):
    model, cfg = build(cls['config'])
    model.eval()
    raw = raw_batch(cfg)
    data = model.data_preprocessor(copy.deepcopy(raw), False)
    seen, handle = capture_input(model.teacher.backbone)
    with torch.no_grad():
        preds = model(**data, mode='predict')
        logits = model(data['inputs'], mode='tensor')
        reference = model.student.head.fc(
            model.student.neck(model.student.backbone(data['inputs']))[-1])
    handle.remove()
    assert seen == []
    torch.testing.assert_close(logits, reference)
    scores = torch.stack([p.pred_score for p in preds])
    torch.testing.assert_close(scores, reference.softmax(dim=1))
    assert [int(p.pred_label) for p in preds] == reference.argmax(dim=1).tolist()


def test_config_errors(cls, tmp_path):
    teacher = cls['teacher_cfg']

    def teacher_variant(name, text):
        return write_config(str(tmp_path / f'{name}.py'), f'_base_ = [{teacher!r}]\n' + text)

    bad_classes = teacher_variant('classes', 'model = dict(head=dict(num_classes=5))\n')
    with pytest.raises(ValueError, match=r'model\.student\.head\.num_classes.*4.*5'):
        build(cls['config'], **{'model.teacher_cfg': bad_classes,
                                'model.teacher_ckpt': RANDOM_TEACHER})
    multi_label = teacher_variant(
        'multilabel', "model = dict(head=dict(_delete_=True, type='MultiLabelLinearClsHead', "
        'num_classes=4, in_channels=128))\n')
    with pytest.raises(TypeError, match='teacher_cfg model.head: MultiLabelLinearClsHead is a '
                       'multi-label head'):
        build(cls['config'], **{'model.teacher_cfg': multi_label,
                                'model.teacher_ckpt': RANDOM_TEACHER})
    no_fc = teacher_variant('nofc', "model = dict(head=dict(_delete_=True, type='ClsHead'))\n")
    with pytest.raises(TypeError, match='teacher_cfg model.head: ClsHead has no linear '
                       'classifier'):
        build(cls['config'], **{'model.teacher_cfg': no_fc, 'model.teacher_ckpt': RANDOM_TEACHER})
    with pytest.raises(TypeError, match=r'model\.student\.head: ArcFaceClsHead overrides '
                       r'ClsHead\.loss'):
        build(cls['config'], **{
            'model.teacher_ckpt': RANDOM_TEACHER,
            'model.student.head': dict(_delete_=True, type='ArcFaceClsHead', num_classes=4,
                                       in_channels=64)})
    with pytest.raises(ValueError, match=r'model\.student\.head is None'):
        build(cls['config'], **{'model.teacher_ckpt': RANDOM_TEACHER, 'model.student.head': None})
    with pytest.raises(ValueError, match=r'model\.loss_cls\.activation.*sigmoid'):
        build(cls['config'], **{'model.teacher_ckpt': RANDOM_TEACHER,
                                'model.loss_cls': dict(activation='sigmoid')})
    segmentor = Config.fromstring(
        "_base_ = ['mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py']\n",
        '.py')
    shrink_segmentor(segmentor, 8)
    seg_cfg = str(tmp_path / 'segmentor.py')
    segmentor.dump(seg_cfg)
    with pytest.raises(TypeError, match='teacher_cfg model: EncoderDecoder is not supported'):
        build(cls['config'], **{'model.teacher_cfg': seg_cfg, 'model.teacher_ckpt': RANDOM_TEACHER})
