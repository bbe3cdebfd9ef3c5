# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""What the study trains: per task, the data, the fixed student, the teacher ladder and
the distillation methods, each a config file in ``projects/teacher_ladder/configs/``.

Every student run - alone, KD (tau 4), KD (tau 1), DIST - is the same student config
with the same schedule, data and seed; the methods differ only in the distiller's
``loss_cls`` / ``loss_decode`` + ``loss_aux`` (and, for KD, the student's cross-entropy
weight, as the official recipe). The teachers differ in width, depth, schedule length and
(``cls_paper``) training recipe and are trained once (seed 0) each.
"""
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Tuple

from mmdist.datasets import make_cityscapes_shapes, make_imagenet_shapes

PROJECT_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))
REPO_ROOT = osp.dirname(osp.dirname(PROJECT_DIR))
CONFIG_DIR = osp.join(PROJECT_DIR, 'configs')


@dataclass(frozen=True)
class Teacher:
    """A rung of the ladder: a short name and its config file (in the task's folder)."""

    name: str
    config: str
    description: str


@dataclass(frozen=True)
class Method:
    """A way to train the student: its key in results.json, label and config file."""

    name: str
    label: str
    config: str


@dataclass(frozen=True)
class LadderTask:
    """One task of the study.

    Attributes:
        name: ``'cls'`` or ``'seg'`` (the config sub-folder and the output sub-folder).
        title: human-readable description.
        metric, metric_label: headline metric key of the evaluator output (percent) and
            its column name.
        student: the student-alone config.
        teachers: the ladder, weakest first (by design; the report orders by measured
            teacher accuracy).
        methods: the distilled students, each a distiller config around ``student``.
        data: keyword arguments of the task's data generator (full study).
        tiny_data: the same for ``--tiny``.
        tiny_length: schedule length of every ``--tiny`` run (epochs or iterations).
    """

    name: str
    title: str
    metric: str
    metric_label: str
    student: str
    teachers: Tuple[Teacher, ...]
    methods: Tuple[Method, ...]
    data: Dict
    tiny_data: Dict
    tiny_length: int

    def config(self, name: str) -> str:
        """Absolute path of ``configs/<task>/<name>`` (``name`` may lead into another
        task's folder: ``../cls/...``)."""
        path = osp.normpath(osp.join(CONFIG_DIR, self.name, name))
        if not osp.isfile(path):
            raise FileNotFoundError(f'teacher-ladder config {path!r} does not exist')
        return path

    def make_data(self, root: str, spec: Dict) -> None:
        raise NotImplementedError

    def data_options(self, root: str) -> List[str]:
        """``--cfg-options`` pointing the train and test dataloaders at ``root``."""
        root = root.rstrip('/') + '/'
        return [f'train_dataloader.dataset.data_root={root}',
                f'test_dataloader.dataset.data_root={root}']

    def schedule_options(self, length: int) -> List[str]:
        """``--cfg-options`` setting a run's schedule to ``length`` units (``--tiny``)."""
        raise NotImplementedError


class ClassificationTask(LadderTask):
    """mmpretrain ResNets on ImageNet-format shapes, top-1 from mmpretrain's Accuracy."""

    def make_data(self, root: str, spec: Dict) -> None:
        make_imagenet_shapes(root, **spec)

    def schedule_options(self, length: int) -> List[str]:
        # The configs' schedule: [LinearLR warm-up epoch, CosineAnnealingLR to the end].
        return [f'train_cfg.max_epochs={length}', f'train_cfg.val_interval={length + 1}',
                'param_scheduler.0.end=1', f'param_scheduler.1.end={max(length, 2)}',
                f'param_scheduler.1.T_max={max(length - 1, 1)}',
                f'default_hooks.checkpoint.interval={length}']


class SegmentationTask(LadderTask):
    """mmseg DeepLabV3-R18-d8 on the demo's Cityscapes-format shapes, mmseg mIoU."""

    def make_data(self, root: str, spec: Dict) -> None:
        make_cityscapes_shapes(root, **spec)

    def schedule_options(self, length: int) -> List[str]:
        # The configs' schedule: [PolyLR over iterations].
        return [f'train_cfg.max_iters={length}', f'train_cfg.val_interval={length + 1}',
                f'param_scheduler.0.end={length}',
                f'default_hooks.checkpoint.interval={length}']


#: The paper's KD baseline (tau 4), KD at the tau mmdist's configs use elsewhere (the
#: demo and faithfulness-study KD configs: tau 1), and DIST (mmdist.DISTLoss defaults,
#: tau 1). Classification weights as the official ImageNet recipe (configs/dist_cls/):
#: DIST 2 on top of the cross-entropy at 1; KD (both tau) 1 on top of the cross-entropy at
#: 0.9. Segmentation: 1 on the decode and 0.4 on the auxiliary logits (configs/dist_seg/).
METHODS = (Method('kd_tau4', 'KD (τ=4)', 'student_kd_tau4.py'),
           Method('kd_tau1', 'KD (τ=1)', 'student_kd_tau1.py'),
           Method('dist', 'DIST', 'student_dist.py'))

#: The wide-gap ladder also runs DIST at weight 1 (its setting before it followed the
#: official recipe), next to weight 2 on the same teachers and seeds: the weight's effect
#: alone. Before DIST, so that DIST (the last method) stays the pairing tests' config.
METHODS_WITH_DIST_WEIGHT_1 = METHODS[:2] + (
    Method('dist_w1', 'DIST (weight 1)', 'student_dist_w1.py'), METHODS[2])

CLASSIFICATION = ClassificationTask(
    name='cls',
    title='classification: mmpretrain ResNets on ImageNet-format shapes (top-1, %)',
    metric='accuracy/top1',
    metric_label='top-1',
    student='student.py',
    teachers=(
        Teacher('R18-w16', 'teacher_r18_w16.py', 'ResNet-18, base width 16, 10 epochs'),
        Teacher('R18-w32', 'teacher_r18_w32.py', 'ResNet-18, base width 32, 10 epochs'),
        Teacher('R18-w32-long', 'teacher_r18_w32_long.py',
                'ResNet-18, base width 32, 30 epochs'),
        Teacher('R50-w32', 'teacher_r50_w32.py', 'ResNet-50, base width 32, 30 epochs'),
    ),
    methods=METHODS_WITH_DIST_WEIGHT_1,
    # Random colours (the shape alone tells the class), stripes, strokes and up to two
    # small shapes of other classes per image.
    data=dict(train_per_class=500, val_per_class=200, image_size=(32, 32),
              object_size=(10, 28), texture=25.0, distractors=3, clutter=2),
    tiny_data=dict(train_per_class=2, val_per_class=1, image_size=(32, 32),
                   object_size=(10, 28), texture=25.0, distractors=3, clutter=2),
    tiny_length=1)

#: The paper's regime (Huang et al., Table 1: ResNet-18 at 69.8 % against teachers 3.5 to
#: 8.5 points better, and "stronger strategy" teachers: the same architectures trained with
#: a better recipe): a student a few points below every teacher, and two architectures each
#: trained with the plain recipe and with a stronger one (twice the schedule, label
#: smoothing, stronger augmentation). Chosen from pilot runs of the student and teachers
#: alone, before any distillation (docs/teacher_ladder.md). The plain teachers are the
#: wide-gap ladder's 30-epoch configs. Same data as CLASSIFICATION.
CLASSIFICATION_PAPER = ClassificationTask(
    name='cls_paper',
    title='classification, the paper\'s regime: teachers a few points above the student '
          '(top-1, %)',
    metric='accuracy/top1',
    metric_label='top-1',
    student='student.py',
    teachers=(
        Teacher('R18-w32', '../cls/teacher_r18_w32_long.py',
                'ResNet-18, base width 32, plain recipe, 30 epochs'),
        Teacher('R50-w32', '../cls/teacher_r50_w32.py',
                'ResNet-50, base width 32, plain recipe, 30 epochs'),
        Teacher('R18-w32-strong', 'teacher_r18_w32_strong.py',
                'ResNet-18, base width 32, stronger recipe, 60 epochs'),
        Teacher('R50-w32-strong', 'teacher_r50_w32_strong.py',
                'ResNet-50, base width 32, stronger recipe, 60 epochs'),
    ),
    methods=METHODS,
    data=CLASSIFICATION.data,
    tiny_data=CLASSIFICATION.tiny_data,
    tiny_length=1)

SEGMENTATION = SegmentationTask(
    name='seg',
    title='segmentation: mmseg DeepLabV3-R18-d8 on Cityscapes-format shapes (mIoU, %)',
    metric='mIoU',
    metric_label='mIoU',
    student='student.py',
    teachers=(
        Teacher('R18-w24', 'teacher_r18_w24.py', 'ResNet-18-d8, width 24, 2x schedule'),
        Teacher('R18-w32', 'teacher_r18_w32.py', 'ResNet-18-d8, width 32, 2x schedule'),
        Teacher('R18-w48', 'teacher_r18_w48.py', 'ResNet-18-d8, width 48, 2x schedule'),
        Teacher('R18-w64', 'teacher_r18_w64.py', 'ResNet-18-d8, width 64, 3x schedule'),
    ),
    methods=METHODS,
    # The demo's segmentation data (demo's SEGMENTATION task).
    data=dict(splits={'train': 600, 'val': 150}, image_size=(64, 128), max_objects=6,
              object_size=(6, 40), texture=25.0, distractors=4, color_noise=60.0),
    tiny_data=dict(splits={'train': 4, 'val': 2}, image_size=(64, 128), max_objects=6,
                   object_size=(6, 40), texture=25.0, distractors=4, color_noise=60.0),
    tiny_length=1)

TASKS: Dict[str, LadderTask] = {
    task.name: task for task in (CLASSIFICATION, CLASSIFICATION_PAPER, SEGMENTATION)}
