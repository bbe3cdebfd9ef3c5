# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""The official Cityscapes evaluation (mmseg's ``CityscapesMetric``, i.e. cityscapesscripts)
end to end on the synthetic Cityscapes-format data: dataset files -> a segmentor ->
label-id PNGs -> cityscapesscripts, checked against a numpy computation of the category
IoU from the same files."""
import glob
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.runner import Runner
from PIL import Image

from mmdist.datasets import cityscapes_shapes_classes
from mmdist.testing._segmentation import data_overrides, write_segmentation_configs

pytest.importorskip('cityscapesscripts')

#: Cityscapes categories of label ids (cityscapesscripts' labels.py), written out here:
#: flat, construction, object, nature, sky, human, vehicle.
CATEGORY_IDS = {'flat': [7, 8], 'construction': [11, 12, 13], 'object': [17, 19, 20],
                'nature': [21, 22], 'sky': [23], 'human': [24, 25],
                'vehicle': [26, 27, 28, 31, 32, 33]}


def test_label_id_files_are_what_cityscapesscripts_maps_train_ids_to(cityscapes_root):
    from cityscapesscripts.helpers.labels import trainId2label
    for train_path in glob.glob(osp.join(cityscapes_root, 'gtFine', '*', '*',
                                         '*_labelTrainIds.png')):
        train_ids = cv2.imread(train_path, cv2.IMREAD_UNCHANGED)
        label_ids = cv2.imread(train_path.replace('labelTrainIds', 'labelIds'),
                               cv2.IMREAD_UNCHANGED)
        for train_id in np.unique(train_ids):
            expected = 0 if train_id == 255 else trainId2label[int(train_id)].id
            assert (label_ids[train_ids == train_id] == expected).all()
    assert len(cityscapes_shapes_classes()) == 7  # train ids 0-6 occur


def category_iou(pred_files, gt_files):
    """Mean over categories (present in labels or predictions) of the category IoU, with
    pixels of ignored ground truth (label ids outside the 19 classes) left out."""
    confusion = {}
    for pred_file, gt_file in zip(pred_files, gt_files):
        pred = np.array(Image.open(pred_file))  # palette PNG: its indices are the ids
        gt = cv2.imread(gt_file, cv2.IMREAD_UNCHANGED)
        valid = np.isin(gt, sum(CATEGORY_IDS.values(), []))
        for name, ids in CATEGORY_IDS.items():
            in_gt, in_pred = np.isin(gt, ids), np.isin(pred, ids)
            counts = confusion.setdefault(name, np.zeros(3, np.int64))
            counts += [(in_gt & in_pred).sum(), (in_gt & ~in_pred).sum(),
                       (valid & ~in_gt & in_pred).sum()]
    scores = [tp / (tp + fn + fp) for tp, fn, fp in confusion.values() if tp + fn + fp]
    return float(np.mean(scores))


def test_cityscapes_metric_end_to_end(tmp_path, cityscapes_root):
    """A tiny DeepLabV3 trained for 60 iterations, tested with IoUMetric and the official
    metric together."""
    paths = write_segmentation_configs(str(tmp_path), cityscapes_root, 'pspnet')
    output_dir = str(tmp_path / 'cityscapes_results')
    cfg = Config.fromstring(
        f"_base_ = [{paths['teacher_cfg']!r}]\n" + data_overrides(cityscapes_root) +
        "train_cfg = dict(max_iters=60, val_interval=1000)\n"
        "default_hooks = dict(checkpoint=dict(interval=1000))\n"
        "optim_wrapper = dict(optimizer=dict(lr=0.05))\n"
        f"test_evaluator = [dict(type='IoUMetric', iou_metrics=['mIoU']), "
        f"dict(type='CityscapesMetric', output_dir={output_dir!r}, keep_results=True)]\n"
        f"work_dir = {str(tmp_path / 'work')!r}\n"
        "visualizer = dict(name='cityscapes_metric_test')\n", '.py')
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.test()
    preds = sorted(glob.glob(osp.join(output_dir, '*.png')))
    gts = [osp.join(cityscapes_root, 'gtFine', 'val', 'synthcity',
                    osp.basename(p).replace('leftImg8bit', 'gtFine_labelIds')) for p in preds]
    assert len(preds) == 2 and all(osp.isfile(gt) for gt in gts)
    expected = category_iou(preds, gts)
    assert metrics['averageScoreCategories'] == pytest.approx(expected, abs=1e-6)
    assert 0 < expected < 1, 'a trivial prediction would not test the evaluation'
