# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Dense student and dense teacher with the same layout: their class logits are compared
directly, level by level (levels paired by stride)."""
from typing import Any, Dict, List, NamedTuple, Optional, Sequence

from torch import Tensor, nn

from mmdist.models.utils.recorder import Record
from .heads import DenseHeadReader, head_reader, supported_heads
from .rows import DenseRows, LevelPairs, pair_levels
from .unit import DetectionUnit, HeadOptions, register_unit

#: Values of the distiller's ``score`` option.
SCORES = ('class', 'joint')
STUDENT_HEAD = 'model.student.bbox_head'
TEACHER_HEAD = 'teacher_cfg model.bbox_head'


class DenseHeads(NamedTuple):
    """A dense student and teacher head with their readers."""

    student: nn.Module
    teacher: nn.Module
    student_reader: DenseHeadReader
    teacher_reader: DenseHeadReader


def dense_heads(student: nn.Module, teacher: nn.Module) -> DenseHeads:
    """The heads of a dense pair; errors for a teacher that is not a supported dense
    detector, or classes that differ."""
    s_head = student.bbox_head
    t_head = getattr(teacher, 'bbox_head', None)
    t_reader = head_reader(t_head)
    if t_reader is None or getattr(teacher, 'roi_head', None) is not None:
        kind = type(t_head).__name__ if t_head is not None else 'no bbox_head'
        raise TypeError(f'teacher_cfg: a {type(s_head).__name__} student needs a dense '
                        f'teacher head ({supported_heads()} or a subclass), got {kind}')
    if s_head.num_classes != t_head.num_classes:
        raise ValueError(f'{STUDENT_HEAD}.num_classes: student and teacher differ in '
                         f'num_classes: student {s_head.num_classes!r} vs teacher '
                         f'{t_head.num_classes!r}')
    return DenseHeads(s_head, t_head, head_reader(s_head), t_reader)


def strides_keys(heads: DenseHeads):
    """The config keys of the two heads' strides."""
    return (f'{STUDENT_HEAD}.{heads.student_reader.strides_key or "prior_generator.strides"}',
            f'{TEACHER_HEAD}.{heads.teacher_reader.strides_key or "prior_generator.strides"}')


def check_score(score: Optional[str], readers: Sequence[DenseHeadReader]) -> str:
    """The ``score`` to read heads with an objectness output with (``'joint'`` unless
    set); setting it when no head has one is an error."""
    if score is not None and not any(reader.has_objectness for reader in readers):
        raise ValueError(f'model.score={score!r}: it chooses between the class and the '
                         'joint class x objectness scores of heads with a separate '
                         'objectness output (YOLOXHead); neither head has one, leave it '
                         'unset')
    return score or 'joint'


def activation_of(head: nn.Module) -> str:
    return 'sigmoid' if head.use_sigmoid_cls else 'softmax'


@register_unit
class DenseDirect(DetectionUnit):
    """Student and teacher class logits compared at each pair of levels with the same
    stride, as rows (``dense_rows``) with padding weights (``mask_padding``). The
    teacher runs its classification branch only (see :mod:`.heads`). Needs the same
    classes, class channels and priors per location at the paired levels."""

    grouped = True

    @classmethod
    def applies(cls, student: nn.Module, options: HeadOptions) -> bool:
        return (getattr(student, 'roi_head', None) is None and not options.cross_head
                and head_reader(getattr(student, 'bbox_head', None)) is not None)

    @classmethod
    def supports(cls) -> str:
        return f'the dense heads {supported_heads()} and their subclasses'

    def __init__(self, student: nn.Module, teacher: nn.Module, options: HeadOptions) -> None:
        super().__init__()
        heads = dense_heads(student, teacher)
        s_head, t_head = heads.student, heads.teacher
        if s_head.cls_out_channels != t_head.cls_out_channels:
            raise ValueError(
                f'{STUDENT_HEAD}.loss_cls.use_sigmoid: student and teacher differ in class '
                f'channels (use_sigmoid): student {s_head.cls_out_channels!r} vs teacher '
                f'{t_head.cls_out_channels!r}')
        s_key, t_key = strides_keys(heads)
        self.pairs: LevelPairs = pair_levels(s_head, t_head, s_key, t_key)
        s_anchors = [s_head.prior_generator.num_base_priors[i] for i in self.pairs.student]
        t_anchors = [t_head.prior_generator.num_base_priors[i] for i in self.pairs.teacher]
        if s_anchors != t_anchors:
            raise ValueError(
                f'{STUDENT_HEAD}.anchor_generator: student and teacher differ in anchors per '
                f'location at the strides {self.pairs.strides}: student {s_anchors!r} vs '
                f'teacher {t_anchors!r}; distil such a pair through the teacher\'s classifier '
                'with model.cross_head=True')
        self.score = check_score(options.score, heads[2:])
        self.rows = DenseRows(self.pairs.strides, s_anchors, options.dense_rows,
                              options.mask_padding)
        self.activation = activation_of(s_head)
        self.activation_source = f'the student head ({STUDENT_HEAD}.loss_cls)'
        # The readers, not the heads: the unit keeps no reference to the models.
        self.readers = heads[2:]

    def teacher_forward(self, teacher: nn.Module, feats: tuple,
                        data_samples: List) -> Dict[str, Any]:
        maps = self.readers[1].score_logits(teacher.bbox_head, feats, self.pairs.teacher,
                                            self.score)
        return dict(rows=self.rows.rows(maps), sizes=[m.shape[-2:] for m in maps])

    def student_records(self, student: nn.Module) -> Dict[str, nn.Module]:
        return dict(head=student.bbox_head)

    def losses(self, student: nn.Module, teacher: nn.Module, records: Dict[str, Record],
               teacher_out: Any, data_samples: List, loss_cls: nn.Module) -> Dict[str, Tensor]:
        maps = self.readers[0].output_logits(records['head'].output, self.pairs.student,
                                             self.score)
        check_sizes(maps, teacher_out['sizes'], self.pairs.strides)
        return dict(loss_dist_cls=self.rows.loss(loss_cls, maps, teacher_out['rows'],
                                                 data_samples))


def check_sizes(student_maps: Sequence[Tensor], teacher_sizes: Sequence, strides) -> None:
    """Paired levels must have the same (H, W) (same stride, same padded batch)."""
    for stride, s_map, t_size in zip(strides, student_maps, teacher_sizes):
        if tuple(s_map.shape[-2:]) != tuple(t_size):
            raise RuntimeError(
                f'the student and teacher levels of stride {stride} have different sizes: '
                f'student {tuple(s_map.shape[-2:])} vs teacher {tuple(t_size)}; their '
                'necks must give the same feature-map size for one padded batch')
