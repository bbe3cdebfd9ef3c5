# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""BaseDistiller.predict_teacher: the teacher's own predict on the student's batch."""
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope, init_default_scope

from mmdist.registry import MODELS
from mmdist.testing._segmentation import write_segmentation_configs


def test_predict_teacher_matches_the_teacher_on_its_own_preprocessing(tmp_path,
                                                                       cityscapes_root):
    paths = write_segmentation_configs(str(tmp_path), cityscapes_root, 'pspnet')
    cfg = Config.fromfile(paths['config'])
    # The teacher normalises differently (other mean/std, RGB order): the adapter is used.
    cfg.model.teacher_cfg_options = {
        'model.data_preprocessor.mean': [10., 20., 30.],
        'model.data_preprocessor.std': [40., 50., 60.],
        'model.data_preprocessor.bgr_to_rgb': False,
    }
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model).eval()
    init_default_scope('mmseg')
    from mmseg.registry import DATASETS
    dataset = DATASETS.build(cfg.val_dataloader.dataset)
    raw = pseudo_collate([dataset[0], dataset[1]])

    data = model.data_preprocessor(raw, False)
    samples = data['data_samples']
    teacher_out = model.predict_teacher(data['inputs'], samples)

    # Reference: the teacher's own preprocessor on the raw batch, then its predict().
    reference = model.teacher.data_preprocessor(pseudo_collate([dataset[0], dataset[1]]), False)
    with torch.no_grad():
        expected = model.teacher.predict(reference['inputs'], reference['data_samples'])
    for got, want in zip(teacher_out, expected):
        assert not got.seg_logits.data.requires_grad
        torch.testing.assert_close(got.seg_logits.data, want.seg_logits.data,
                                   atol=1e-4, rtol=1e-4)
        assert torch.equal(got.pred_sem_seg.data, want.pred_sem_seg.data)
        assert got.metainfo['img_path'] == want.metainfo['img_path']

    # The caller's samples are untouched: no predictions written into them.
    for sample in samples:
        assert 'seg_logits' not in sample and 'pred_sem_seg' not in sample
        assert 'gt_sem_seg' in sample
    # The student's prediction (mode='predict') differs from the teacher's.
    student_out = model(data['inputs'], samples, mode='predict')
    assert not torch.allclose(student_out[0].seg_logits.data, teacher_out[0].seg_logits.data)
