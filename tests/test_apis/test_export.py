# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""export_student on hand-made distillation checkpoints: plain data preprocessor, dataset
meta kept for plain mmseg, and a checkpoint of another student refused."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmdist.apis import export_student
from mmdist.registry import MODELS
from mmdist.testing._segmentation import write_config, write_segmentation_configs
from mmdist.utils import CheckpointError

#: Class names no dataset default would guess (19, as the Cityscapes-sized student head).
CLASSES = tuple(f'shape_{i}' for i in range(19))
PALETTE = [[i, 2 * i, 3 * i] for i in range(19)]


@pytest.fixture(scope='module')
def cutmix(tmp_path_factory, cityscapes_root):
    """The tiny PSPNet distillation config with the shipped CutMix data preprocessor."""
    tmp = tmp_path_factory.mktemp('export')
    pspnet = write_segmentation_configs(str(tmp), cityscapes_root, 'pspnet')
    return write_config(
        str(tmp / 'dist_cutmix.py'), f"_base_ = [{pspnet['config']!r}]\n"
        'model = dict(student=dict(data_preprocessor=dict('
        "type='mmdist.BatchMixSegDataPreprocessor', "
        "batch_augments=[dict(type='mmdist.SegBatchCutMix', alpha=1.0, prob=0.5)])))\n")


def distillation_checkpoint(config: str, path: str, **model_changes) -> str:
    """What a run of ``config`` (``model`` updated by ``model_changes``) saves, without
    training it."""
    cfg = Config.fromfile(config)
    cfg.model.update(model_changes)
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
    torch.save({'meta': {'dataset_meta': {'classes': CLASSES, 'palette': PALETTE}, 'iter': 4},
                'state_dict': model.state_dict(), 'optimizer': {}}, path)
    return path


def test_cutmix_student_exports_a_plain_seg_data_preprocessor(cutmix, tmp_path):
    ckpt = distillation_checkpoint(cutmix, str(tmp_path / 'iter_4.pth'))
    student_ckpt, student_cfg, _ = export_student(cutmix, ckpt, str(tmp_path / 'out'), 'student')
    preprocessor = Config.fromfile(student_cfg).model.data_preprocessor
    trained = Config.fromfile(cutmix).model.student.data_preprocessor
    assert trained.type == 'mmdist.BatchMixSegDataPreprocessor'
    assert preprocessor.type == 'SegDataPreProcessor' and 'batch_augments' not in preprocessor
    assert {k: v for k, v in preprocessor.items() if k != 'type'} == {
        k: v for k, v in trained.items() if k not in ('type', 'batch_augments')}
    with open(student_cfg, encoding='utf-8') as f:
        assert 'mmdist' not in f.read()

    # Plain mmseg's API. The config names no mmdist type (checked above), so it resolves
    # only mmseg's registry, as in an interpreter without mmdist.
    from mmseg.apis import init_model
    from mmseg.models.data_preprocessor import SegDataPreProcessor
    model = init_model(student_cfg, student_ckpt, device='cpu')
    assert type(model.data_preprocessor) is SegDataPreProcessor
    state = torch.load(student_ckpt, weights_only=True)['state_dict']
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items()
               if not k.endswith('num_batches_tracked'))
    # init_model takes the class names from the exported meta (without them it guesses from
    # num_classes: Cityscapes' names).
    assert tuple(model.dataset_meta['classes']) == CLASSES


def test_checkpoint_of_another_student_is_refused(cutmix, tmp_path):
    """A run whose student had another decode head width and no auxiliary head."""
    ckpt = distillation_checkpoint(
        cutmix, str(tmp_path / 'other.pth'), loss_aux=None,
        student=dict(auxiliary_head=None, decode_head=dict(channels=24)))
    with pytest.raises(CheckpointError, match=r"^checkpoint: the student weights of '.*other"
                       r"\.pth' are not those of the config's model\.student \(EncoderDecoder\): "
                       r"\d+ of \d+ tensors fit; missing 'auxiliary_head\..*other shape "
                       r"'decode_head\."):
        export_student(cutmix, ckpt, str(tmp_path / 'out'), 'student')
    assert not osp.exists(tmp_path / 'out' / 'student.pth')
