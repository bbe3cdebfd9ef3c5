# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Segmentation Mixup / CutMix: exact boxes and labels with pinned random draws."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope, init_default_scope
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from mmdist.models.data_preprocessors import SegBatchCutMix, SegBatchMixup
from mmdist.registry import MODELS
from mmdist.testing._segmentation import write_segmentation_configs


def pin_draws(monkeypatch, lam, perm, centre=(4, 4)):
    """Fix lam ~ Beta, the partner permutation and the CutMix box centre."""

    class FixedBeta:

        def __init__(self, *args):
            pass

        def sample(self):
            return torch.tensor(lam)

    monkeypatch.setattr(torch.distributions, 'Beta', FixedBeta)
    monkeypatch.setattr(torch, 'randperm', lambda n: torch.tensor(perm))
    draws = iter(centre)
    monkeypatch.setattr(torch, 'randint', lambda high, size: torch.tensor(next(draws)))


def batch(n=2, size=8):
    inputs = torch.arange(n * 3 * size * size, dtype=torch.float32).view(n, 3, size, size)
    samples = []
    for i in range(n):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=torch.full((1, size, size), i, dtype=torch.long))
        samples.append(sample)
    return inputs, samples


def test_cutmix_pastes_the_partner_box_with_its_labels(monkeypatch):
    pin_draws(monkeypatch, lam=0.75, perm=[1, 0], centre=(4, 5))
    inputs, samples = batch()
    out, samples = SegBatchCutMix(alpha=1.0)(inputs, samples)
    # 1 - lam = 1/4 of the area: a 4 x 4 box centred at (y=4, x=5): rows 2..5, cols 3..6.
    expected = inputs.clone()
    expected[0, :, 2:6, 3:7] = inputs[1, :, 2:6, 3:7]
    expected[1, :, 2:6, 3:7] = inputs[0, :, 2:6, 3:7]
    assert torch.equal(out, expected)
    labels = torch.stack([s.gt_sem_seg.data for s in samples])
    assert labels[0, 0, 2:6, 3:7].eq(1).all() and labels[0].eq(1).sum() == 16
    assert labels[1, 0, 2:6, 3:7].eq(0).all() and labels[1].eq(0).sum() == 16


@pytest.mark.parametrize('lam, partner_labels', [(0.3, True), (0.8, False)])
def test_mixup_mixes_images_and_keeps_the_dominant_labels(monkeypatch, lam, partner_labels):
    pin_draws(monkeypatch, lam=lam, perm=[1, 0])
    inputs, samples = batch()
    out, samples = SegBatchMixup(alpha=0.2)(inputs, samples)
    torch.testing.assert_close(out, lam * inputs + (1 - lam) * inputs[[1, 0]])
    assert samples[0].gt_sem_seg.data.eq(1 if partner_labels else 0).all()


def test_argument_errors():
    with pytest.raises(ValueError, match='SegBatchCutMix.alpha must be > 0'):
        SegBatchCutMix(alpha=0)
    with pytest.raises(ValueError, match=r'SegBatchMixup.prob must be in \[0, 1\]'):
        SegBatchMixup(prob=1.5)


def test_teacher_sees_the_same_cutmix_batch(monkeypatch, tmp_path, cityscapes_root):
    """Preprocessor built from config, mixing in training only; the teacher (other
    normalisation) receives the same mixed images in its own normalisation."""
    paths = write_segmentation_configs(str(tmp_path), cityscapes_root, 'pspnet')
    cfg = Config.fromfile(paths['config'])
    cfg.model.student.data_preprocessor.update(
        type='mmdist.BatchMixSegDataPreprocessor',
        batch_augments=[dict(type='mmdist.SegBatchCutMix', alpha=1.0)])
    teacher_mean, teacher_std = [100.0, 110.0, 120.0], [50.0, 60.0, 70.0]
    teacher_cfg = Config.fromfile(paths['teacher_cfg'])
    teacher_cfg.model.data_preprocessor.update(mean=teacher_mean, std=teacher_std)
    teacher_cfg.dump(str(tmp_path / 'teacher_other_norm.py'))
    cfg.model.teacher_cfg = str(tmp_path / 'teacher_other_norm.py')
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
    init_default_scope('mmseg')
    from mmseg.registry import DATASETS
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    raw = pseudo_collate([dataset[0], dataset[1]])

    plain = model.data_preprocessor(copy.deepcopy(raw), False)  # no mixing outside training
    pin_draws(monkeypatch, lam=0.75, perm=[1, 0], centre=(16, 32))
    mixed = model.data_preprocessor(copy.deepcopy(raw), True)
    assert not torch.equal(mixed['inputs'], plain['inputs'])
    ours = model.teacher_inputs(mixed['inputs'], mixed['data_samples'])
    # Reference: each raw image (BGR -> RGB) in the teacher's normalisation, then the
    # 16 x 32 box centred at (16, 32) pasted from the partner.
    images = torch.stack(raw['inputs']).float().flip(1)
    reference = (images - torch.tensor(teacher_mean).view(1, 3, 1, 1)) / torch.tensor(
        teacher_std).view(1, 3, 1, 1)
    expected = reference.clone()
    expected[:, :, 8:24, 16:48] = reference[[1, 0], :, 8:24, 16:48]
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-4)
