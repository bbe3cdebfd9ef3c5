# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""The two demo tasks: which configs, which synthetic data, which metrics.

Everything a run of the demo trains is a config in ``configs/demo/`` (teacher, student
alone, student + KD, student + DIST). A task adds only what the configs cannot know:
where the generated data lives (``--cfg-options`` with absolute paths), the shorter
``--tiny`` schedules, and which metrics to report.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from mmdist.datasets import SHAPE_CLASSES, make_cityscapes_shapes, make_coco_shapes

#: The four runs of a task, in table order.
ROLES = ('teacher', 'student', 'kd', 'dist')
#: Row names of the results table.
ROLE_NAMES = {
    'teacher': 'teacher',
    'student': 'student',
    'kd': 'student + KD',
    'dist': 'student + DIST',
}
#: Roles whose config is a distiller (the student is ``model.student``).
DISTILLED = ('kd', 'dist')


@dataclass(frozen=True)
class DataSpec:
    """Arguments of the synthetic dataset generator (see :mod:`mmdist.datasets`)."""

    splits: Dict[str, int]
    image_size: Tuple[int, int]
    max_objects: int
    object_size: Tuple[int, int]
    texture: float
    distractors: int
    color_noise: Optional[float] = None
    seed: int = 0

    def as_kwargs(self) -> Dict:
        return dict(splits=dict(self.splits), image_size=tuple(self.image_size),
                    max_objects=self.max_objects, object_size=tuple(self.object_size),
                    texture=self.texture, distractors=self.distractors,
                    color_noise=self.color_noise, seed=self.seed)


@dataclass(frozen=True)
class Metric:
    """A reported metric: key in the evaluator's output, column label, and the factor
    that makes it a percentage (CocoMetric reports fractions, IoUMetric percentages)."""

    key: str
    label: str
    scale: float = 1.0


@dataclass(frozen=True)
class DemoTask:
    """One task of the demo.

    Attributes:
        name: ``'det'`` or ``'seg'`` (also the sub-folder of the output directory).
        title: human-readable description.
        configs: role -> file name in ``configs/demo/``.
        data: the synthetic dataset of the full demo.
        tiny_data: the dataset of ``--tiny`` (a handful of images).
        tiny_schedule: teacher / student schedule length under ``--tiny``, in the
            configs' unit (epochs for detection, iterations for segmentation).
        metrics: reported metrics; the first is the headline metric.
        unit: ``'epochs'`` or ``'iterations'`` (the configs' schedule unit).
    """

    name: str
    title: str
    configs: Dict[str, str]
    data: DataSpec
    tiny_data: DataSpec
    tiny_schedule: Dict[str, int]
    metrics: Tuple[Metric, ...]
    unit: str
    classes: Tuple[str, ...] = field(default=SHAPE_CLASSES)

    @property
    def headline(self) -> Metric:
        return self.metrics[0]

    def make_data(self, root: str, spec: DataSpec) -> None:
        """Write the dataset described by ``spec`` into ``root``."""
        raise NotImplementedError

    def data_options(self, root: str) -> List[str]:
        """``--cfg-options`` pointing train and test dataloaders at ``root``."""
        raise NotImplementedError

    def schedule_options(self, length: int) -> List[str]:
        """``--cfg-options`` shortening a demo config's schedule to ``length`` units."""
        raise NotImplementedError

    def tiny_test_options(self, role: str) -> List[str]:
        """Extra ``--cfg-options`` for evaluating barely trained ``--tiny`` models."""
        return []


class DetectionTask(DemoTask):
    """RetinaNet on COCO-format shapes, box AP from mmdet's ``CocoMetric``."""

    def make_data(self, root: str, spec: DataSpec) -> None:
        make_coco_shapes(root, **spec.as_kwargs())

    def data_options(self, root: str) -> List[str]:
        root = root.rstrip('/') + '/'
        return [f'train_dataloader.dataset.data_root={root}',
                f'test_dataloader.dataset.data_root={root}',
                f'test_evaluator.ann_file={root}annotations/instances_val.json']

    def schedule_options(self, length: int) -> List[str]:
        # The demo configs' schedule: [LinearLR warm-up, CosineAnnealingLR over epochs].
        return [f'train_cfg.max_epochs={length}', f'train_cfg.val_interval={length + 1}',
                f'param_scheduler.1.T_max={length}', f'param_scheduler.1.end={length}',
                f'default_hooks.checkpoint.interval={length}']

    def tiny_test_options(self, role: str) -> List[str]:
        # After a few iterations no score passes the stock 0.05 threshold, and
        # CocoMetric returns no metrics for an empty result list.
        prefix = 'model.student' if role in DISTILLED else 'model'
        return [f'{prefix}.test_cfg.score_thr=0.0']


class SegmentationTask(DemoTask):
    """DeepLabV3 on Cityscapes-format shapes, mIoU from mmseg's ``IoUMetric``."""

    def make_data(self, root: str, spec: DataSpec) -> None:
        make_cityscapes_shapes(root, **spec.as_kwargs())

    def data_options(self, root: str) -> List[str]:
        return [f'train_dataloader.dataset.data_root={root}',
                f'test_dataloader.dataset.data_root={root}']

    def schedule_options(self, length: int) -> List[str]:
        # The demo configs' schedule: [PolyLR over iterations].
        return [f'train_cfg.max_iters={length}', f'train_cfg.val_interval={length + 1}',
                f'param_scheduler.0.end={length}',
                f'default_hooks.checkpoint.interval={length}']


DETECTION = DetectionTask(
    name='det',
    title='detection: RetinaNet on COCO-format shapes (box AP, mmdet CocoMetric)',
    configs=dict(teacher='det_teacher.py', student='det_student.py',
                 kd='det_student_kd.py', dist='det_student_dist.py'),
    data=DataSpec(splits={'train': 600, 'val': 200}, image_size=(128, 128), max_objects=6,
                  object_size=(8, 48), texture=25.0, distractors=4, color_noise=60.0),
    tiny_data=DataSpec(splits={'train': 8, 'val': 4}, image_size=(128, 128), max_objects=6,
                       object_size=(8, 48), texture=25.0, distractors=4, color_noise=60.0),
    tiny_schedule=dict(teacher=2, student=1),
    metrics=(Metric('coco/bbox_mAP', 'box AP', 100.0), Metric('coco/bbox_mAP_50', 'AP50', 100.0),
             Metric('coco/bbox_mAP_75', 'AP75', 100.0), Metric('coco/bbox_mAP_s', 'APs', 100.0)),
    unit='epochs')

SEGMENTATION = SegmentationTask(
    name='seg',
    title='segmentation: DeepLabV3 on Cityscapes-format shapes (mIoU, mmseg IoUMetric)',
    configs=dict(teacher='seg_teacher.py', student='seg_student.py',
                 kd='seg_student_kd.py', dist='seg_student_dist.py'),
    data=DataSpec(splits={'train': 600, 'val': 150}, image_size=(64, 128), max_objects=6,
                  object_size=(6, 40), texture=25.0, distractors=4, color_noise=60.0),
    tiny_data=DataSpec(splits={'train': 8, 'val': 4}, image_size=(64, 128), max_objects=6,
                       object_size=(6, 40), texture=25.0, distractors=4, color_noise=60.0),
    tiny_schedule=dict(teacher=4, student=2),
    metrics=(Metric('mIoU', 'mIoU'), Metric('mAcc', 'mAcc'), Metric('aAcc', 'aAcc')),
    unit='iterations')

TASKS: Dict[str, DemoTask] = {task.name: task for task in (DETECTION, SEGMENTATION)}


def select_tasks(which: str) -> Sequence[DemoTask]:
    """``'det'``, ``'seg'`` or ``'all'`` -> the tasks to run, in order."""
    if which == 'all':
        return list(TASKS.values())
    if which not in TASKS:
        raise ValueError(f'unknown task {which!r}; choose from det, seg, all')
    return [TASKS[which]]
