# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""What the faithfulness study trains: the two studies, their data and their students.

Every option value below was fixed before any result was seen and is the same for all
students of a study (schedule and seed come from the demo configs):

* CutMix as shipped in ``configs/dist_seg/dist-cutmix_*.py``: ``alpha=1.0, prob=0.5``;
* KL anchor ``kl_weight=0.5`` (middle of the 0.1-1 range docs/losses.md suggests);
* class-aware intra term ``intra_class_threshold=0.05`` (the value docs/losses.md gives);
* both options on the decode and the auxiliary DIST loss alike;
* imbalanced data (study B): ring and diamond 10x rarer than each of the four other
  shapes.

Study C was added after study B's teacher had been measured (before any study B student
result was read): with ring and diamond rare, that teacher never predicts them (IoU 0),
so no student can learn them from it. Study C makes two shapes rare that have no
look-alike among the common ones (triangle, cross), with everything else as in study B.
Study D (added when study C's teacher had not learnt its rare classes either) is study C
with a milder imbalance, 4x instead of 10x.
"""
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Tuple

from mmdist.datasets import SHAPE_CLASSES, cityscapes_shapes_classes
from demo.tasks import DETECTION, SEGMENTATION, DataSpec, DemoTask

#: CutMix of the calibration-aware DIST config (configs/dist_seg/dist-cutmix_*.py).
CUTMIX = dict(alpha=1.0, prob=0.5)
KL_WEIGHT = 0.5
INTRA_CLASS_THRESHOLD = 0.05
#: How much rarer the rare classes of studies B and C are than each common one.
RARITY = 10.0


@dataclass(frozen=True)
class WeightedDataSpec(DataSpec):
    """The demo's :class:`DataSpec` plus the generator's ``class_weights``."""

    class_weights: Optional[Tuple[float, ...]] = None

    def as_kwargs(self) -> Dict:
        kwargs = super().as_kwargs()
        if self.class_weights is not None:
            kwargs['class_weights'] = list(self.class_weights)
        return kwargs


@dataclass(frozen=True)
class Variant:
    """One student: a demo config plus config overrides.

    Attributes:
        name: short id (work directory name, JSON key).
        label: row name in the table.
        config: file in ``configs/demo/``.
        model: overrides merged into the config's ``model`` (a distiller).
        overrides: other top-level config entries merged into the config's.
    """

    name: str
    label: str
    config: str
    model: Dict = field(default_factory=dict)
    overrides: Dict = field(default_factory=dict)


def _dist_options(**options) -> Dict:
    """Overrides setting the same DISTLoss options on the decode and auxiliary loss."""
    return dict(loss_decode=dict(options), loss_aux=dict(options))


@dataclass(frozen=True)
class Column:
    """A table column: metric key, header, and the factor that makes it a percentage."""

    key: str
    label: str
    scale: float = 100.0


#: Evaluators of the segmentation studies: mmseg's mIoU / mAcc / aAcc and the
#: faithfulness metric, both with per-class keys (:mod:`projects.faithfulness_study.metrics`).
SEG_EVALUATORS = (dict(type='mmdist.PerClassIoUMetric', iou_metrics=['mIoU']),
                  dict(type='mmdist.PerClassSegFaithfulnessMetric'))
#: Evaluators of the detection study: COCO box AP with per-class AP
#: (``coco/<class>_precision``) and the detection faithfulness metric. The first one's
#: ``ann_file`` is set per run.
DET_EVALUATORS = (dict(type='CocoMetric', metric='bbox', classwise=True),
                  dict(type='mmdist.DetFaithfulnessMetric'))


@dataclass(frozen=True)
class Study:
    """One study: task, data, teacher config, students, evaluators, reported columns."""

    name: str
    title: str
    data: DataSpec
    tiny_data: DataSpec
    variants: Tuple[Variant, ...]
    columns: Tuple[Column, ...]
    class_weights: Optional[Tuple[float, ...]] = None
    task: DemoTask = SEGMENTATION
    teacher_config: str = 'seg_teacher.py'
    evaluators: Tuple[Dict, ...] = SEG_EVALUATORS


def _per_class(prefix: str, label: str, ids: Tuple[int, ...], scale: float) -> Tuple:
    names = cityscapes_shapes_classes()
    return tuple(Column(f'{prefix}.{k}', f'{label} {names[k]}', scale) for k in ids)


DIST = Variant('dist', 'DIST', 'seg_student_dist.py')

STUDY_A = Study(
    name='A',
    title='balanced demo data, demo teacher: DIST vs DIST + CutMix',
    data=SEGMENTATION.data,
    tiny_data=SEGMENTATION.tiny_data,
    variants=(DIST,
              Variant('dist_cutmix', 'DIST + CutMix', 'seg_student_dist.py',
                      dict(student=dict(data_preprocessor=dict(
                          type='mmdist.BatchMixSegDataPreprocessor',
                          batch_augments=[dict(type='mmdist.SegBatchCutMix', **CUTMIX)]))))),
    columns=(Column('mIoU', 'mIoU', 1.0), Column('mAcc', 'mAcc', 1.0),
             Column('faith/ece_student', 'ECE'), Column('faith/ece_teacher', 'ECE teacher'),
             Column('faith/ece_diff', 'ECE diff'), Column('faith/cb_ece_student', 'CB-ECE'),
             Column('faith/oe_student', 'OE'), Column('faith/agreement', 'agree'),
             Column('faith/agreement_teacher_correct', 'agree (T correct)'),
             Column('faith/agreement_class_macro', 'agree class-macro')))

def _option_variants(kd_config: str, dist_config: str,
                     options: Callable[..., Dict]) -> Tuple[Variant, ...]:
    """KD, DIST, DIST + KL anchor, class-aware DIST and both options; ``options(**kw)``
    gives the model overrides that set DISTLoss options in ``dist_config``."""
    return (Variant('kd', 'KD', kd_config), Variant('dist', 'DIST', dist_config),
            Variant('dist_kl', f'DIST + KL ({KL_WEIGHT:g})', dist_config,
                    options(kl_weight=KL_WEIGHT)),
            Variant('dist_ca', f'DIST class-aware ({INTRA_CLASS_THRESHOLD:g})', dist_config,
                    options(intra_class_threshold=INTRA_CLASS_THRESHOLD)),
            Variant('dist_kl_ca', 'DIST + KL + class-aware', dist_config,
                    options(kl_weight=KL_WEIGHT, intra_class_threshold=INTRA_CLASS_THRESHOLD)))


def class_weights(rare: Tuple[int, ...], rarity: float = RARITY) -> Tuple[float, ...]:
    """Generator ``class_weights``: the shapes with train ids ``rare`` ``rarity`` x rarer."""
    return tuple(1.0 if k in rare else float(rarity) for k in range(1, 7))


def _imbalanced_study(name: str, rare: Tuple[int, int], rarity: float = RARITY) -> Study:
    """KD, DIST and the DIST options on data where the shapes ``rare`` are rare."""
    names = cityscapes_shapes_classes()
    weights = class_weights(rare, rarity)
    return Study(
        name=name,
        title=(f'imbalanced data ({names[rare[0]]}, {names[rare[1]]} {rarity:g}x rarer), '
               'its own teacher: KD vs DIST and the DIST options'),
        data=WeightedDataSpec(**SEGMENTATION.data.as_kwargs(), class_weights=weights),
        tiny_data=WeightedDataSpec(**SEGMENTATION.tiny_data.as_kwargs(),
                                   class_weights=weights),
        variants=_option_variants('seg_student_kd.py', 'seg_student_dist.py', _dist_options),
        columns=(Column('mIoU', 'mIoU', 1.0), *_per_class('IoU', 'IoU', rare, 1.0),
                 Column('faith/agreement', 'agree'),
                 Column('faith/agreement_class_macro', 'agree class-macro'),
                 *_per_class('faith/agreement', 'agree', rare, 100.0),
                 Column('faith/cb_ece_student', 'CB-ECE'), Column('faith/ece_student', 'ECE')),
        class_weights=weights)


STUDY_B = _imbalanced_study('B', (5, 6))  # ring, diamond
STUDY_C = _imbalanced_study('C', (3, 4))  # triangle, cross
STUDY_D = _imbalanced_study('D', (3, 4), rarity=4.0)  # milder: triangle, cross 4x rarer



def _detection_study(name: str, rare: Tuple[int, int], rarity: float) -> Study:
    """Study D for detection: RetinaNet students (KD, DIST, the DIST options) on COCO-format
    shapes where the shapes ``rare`` (indices into SHAPE_CLASSES) are ``rarity`` x rarer."""
    weights = tuple(1.0 if k in rare else float(rarity) for k in range(len(SHAPE_CLASSES)))

    def cls_options(**options) -> Dict:
        return dict(loss_cls=dict(options))

    return Study(
        name=name,
        title=(f'detection, imbalanced data ({SHAPE_CLASSES[rare[0]]}, '
               f'{SHAPE_CLASSES[rare[1]]} {rarity:g}x rarer), its own teacher: KD vs DIST '
               'and the DIST options'),
        data=WeightedDataSpec(**DETECTION.data.as_kwargs(), class_weights=weights),
        tiny_data=WeightedDataSpec(**DETECTION.tiny_data.as_kwargs(), class_weights=weights),
        variants=_option_variants('det_student_kd.py', 'det_student_dist.py', cls_options),
        columns=(Column('coco/bbox_mAP', 'box AP'),
                 *(Column(f'coco/{SHAPE_CLASSES[k]}_precision', f'AP {SHAPE_CLASSES[k]}')
                   for k in rare),
                 Column('faith/fidelity_recall', 'fidelity recall'),
                 Column('faith/fidelity_recall_class_macro', 'fid. recall class-macro'),
                 *(Column(f'faith/fidelity_recall.{k}', f'fid. recall {SHAPE_CLASSES[k]}')
                   for k in rare),
                 Column('faith/cb_dece_student', 'CB-D-ECE'),
                 Column('faith/dece_student', 'D-ECE')),
        class_weights=weights,
        task=DETECTION,
        teacher_config='det_teacher.py',
        evaluators=DET_EVALUATORS)


#: Study D's imbalance (triangle, cross 4x rarer) for detection.
STUDY_E = _detection_study('E', (2, 3), rarity=4.0)


#: The demo's detection training pipeline with every image scaled by a random factor in
#: [0.5, 1] first: the images of a batch differ in size, so the batch has padding.
PADDED_BATCHES = dict(train_dataloader=dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomResize', scale=(128, 128), ratio_range=(0.5, 1.0), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
])))


def _layout(name: str, label: str, dense_rows: str, mask_padding: bool,
            overrides: Optional[Dict] = None) -> Variant:
    return Variant(name, label, 'det_student_dist.py',
                   dict(dense_rows=dense_rows, mask_padding=mask_padding), overrides or {})


#: The DetectionDistiller's dense row layouts on the demo's detection data and teacher:
#: one row per anchor (C scores) or per location (A*C scores, the official code's). The
#: demo's images are all 128 x 128 (no padding), so the padding rule (masked, or kept as
#: the official code keeps it) is compared on batches of randomly scaled images.
STUDY_F = Study(
    name='F',
    title='detection, demo data and teacher: DIST rows per anchor vs per location '
    '(official); padding masked vs kept (official) on batches with padding',
    data=DETECTION.data,
    tiny_data=DETECTION.tiny_data,
    variants=(_layout('anchor', 'per anchor', 'anchor', True),
              _layout('location', 'per location (official)', 'location', True),
              _layout('location_masked_pad', 'per location, padding masked, scaled images',
                      'location', True, PADDED_BATCHES),
              _layout('location_kept_pad', 'per location, padding kept (official), scaled '
                      'images', 'location', False, PADDED_BATCHES)),
    columns=(Column('coco/bbox_mAP', 'box AP'), Column('coco/bbox_mAP_50', 'AP50'),
             Column('coco/bbox_mAP_75', 'AP75'),
             Column('faith/fidelity_recall', 'fidelity recall'),
             Column('faith/dece_student', 'D-ECE')),
    task=DETECTION,
    teacher_config='det_teacher.py',
    evaluators=DET_EVALUATORS)

STUDIES: Dict[str, Study] = {study.name: study for study in (STUDY_A, STUDY_B, STUDY_C,
                                                             STUDY_D, STUDY_E, STUDY_F)}
