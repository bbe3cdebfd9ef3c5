# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Cross-head distillation (``cross_head=True``): any dense teacher into any dense
student, whatever their head types, priors per location and channel widths.

Idea from CrossKD (Wang et al., CVPR 2024). At each pair of levels with the same stride,
the student's class-branch features (the input of its classifier, i.e. after its own
stacked class convs) go through a 1x1 adapter (student -> teacher channels; only where
the widths differ) and then through the frozen teacher's final classifier conv. This
gives logits in the teacher's layout (its priors per location, its classes' activation),
which ``loss_cls`` compares with the teacher's own classifier output on its own features
at the same locations. Gradients reach the student through the teacher's classifier,
whose parameters stay frozen; the adapters are trained with the student, saved in the
distillation checkpoint and not part of the exported student.

Only the final classifier conv of the teacher runs on student features: "after the
student's stacked convs" is defined for every pair, whatever the number of class convs
of either head, and it is the cheapest part of the teacher's branch to run with
gradients (one conv per level). For a head with objectness (YOLOX, RTMDet with
``with_objectness``), both sides are the classifier's output before objectness.
"""
from typing import Any, Dict, List, Tuple

from torch import Tensor, nn

from mmdist.models.utils.recorder import Record
from .dense import STUDENT_HEAD, TEACHER_HEAD, activation_of, check_sizes, dense_heads, \
    strides_keys
from .heads import head_reader
from .rows import DenseRows, pair_levels
from .unit import DetectionUnit, HeadOptions, register_unit


@register_unit
class CrossHead(DetectionUnit):
    """The student's class-branch features through the teacher's classifier vs the
    teacher's own logits, per pair of levels with the same stride."""

    grouped = True

    @classmethod
    def applies(cls, student: nn.Module, options: HeadOptions) -> bool:
        return getattr(student, 'roi_head', None) is None and options.cross_head

    def __init__(self, student: nn.Module, teacher: nn.Module, options: HeadOptions) -> None:
        super().__init__()
        s_head = getattr(student, 'bbox_head', None)
        if head_reader(s_head) is None:
            kind = type(s_head).__name__ if s_head is not None else 'no bbox_head'
            raise TypeError(f'model.cross_head: the student head {kind} is not a supported '
                            'dense head')
        heads = dense_heads(student, teacher)
        for key, head, reader in ((STUDENT_HEAD, heads.student, heads.student_reader),
                                  (TEACHER_HEAD, heads.teacher, heads.teacher_reader)):
            if not reader.cross_head:
                raise TypeError(f'model.cross_head: {key} is a {type(head).__name__}, which '
                                'computes its class logits in its own forward; cross-head '
                                'distillation needs a head whose classifier conv mmdist '
                                'knows (see docs/detection.md)')
        if options.score == 'joint':
            raise ValueError('model.score=\'joint\': cross-head distillation compares the '
                             'teacher classifier\'s class logits; objectness is not part of '
                             'them (leave model.score unset or \'class\')')
        if options.score is not None and not any(r.has_objectness for r in heads[2:]):
            raise ValueError(f'model.score={options.score!r}: neither head has an objectness '
                             'output; leave it unset')
        s_key, t_key = strides_keys(heads)
        self.pairs = pair_levels(heads.student, heads.teacher, s_key, t_key)
        self.readers = heads[2:]
        s_channels = heads.student_reader.cls_channels(heads.student)
        t_channels = heads.teacher_reader.cls_channels(heads.teacher)
        #: One 1x1 conv per paired level, student -> teacher class-branch channels.
        self.adapters = nn.ModuleList(
            nn.Conv2d(s_channels, t_channels, kernel_size=1) if s_channels != t_channels
            else nn.Identity() for _ in self.pairs.student)
        anchors = [heads.teacher.prior_generator.num_base_priors[i] for i in self.pairs.teacher]
        self.rows = DenseRows(self.pairs.strides, anchors, options.dense_rows,
                              options.mask_padding)
        self.activation = activation_of(heads.teacher)
        self.activation_source = (f'the teacher head ({TEACHER_HEAD}.loss_cls), whose '
                                  'classifier makes both compared logits')
        # Which call of which student classifier gives each paired level's features: a
        # classifier shared by all levels runs once per level, in level order.
        classifiers = [heads.student_reader.classifier(heads.student, level)
                       for level in range(heads.student.prior_generator.num_levels)]
        unique: List[nn.Module] = []
        self._student_calls: Dict[int, Tuple[int, int]] = {}
        self._calls_per_classifier: List[int] = []
        for level, module in enumerate(classifiers):
            index = next((i for i, m in enumerate(unique) if m is module), None)
            if index is None:
                unique.append(module)
                self._calls_per_classifier.append(0)
                index = len(unique) - 1
            self._student_calls[level] = (index, self._calls_per_classifier[index])
            self._calls_per_classifier[index] += 1

    def teacher_forward(self, teacher: nn.Module, feats: tuple,
                        data_samples: List) -> Dict[str, Any]:
        reader, head = self.readers[1], teacher.bbox_head
        maps = [reader.classifier(head, level)(reader.cls_features(head, feats[level], level))
                for level in self.pairs.teacher]
        return dict(rows=self.rows.rows(maps), sizes=[m.shape[-2:] for m in maps])

    def student_records(self, student: nn.Module) -> Dict[str, nn.Module]:
        reader, head = self.readers[0], student.bbox_head
        records = {}
        for level, (index, _) in self._student_calls.items():
            records[f'classifier{index}'] = reader.classifier(head, level)
        return records

    def student_features(self, records: Dict[str, Record]) -> List[Tensor]:
        """The (N, F_s, H, W) class-branch features of the student's paired levels."""
        for index, expected in enumerate(self._calls_per_classifier):
            calls = len(records[f'classifier{index}'].calls)
            if calls != expected:
                raise RuntimeError(f'cross_head: the student\'s classifier {index} ran {calls} '
                                   f'times in its loss(), expected {expected} (once per level)')
        return [records[f'classifier{index}'].calls[call][0][0]
                for index, call in (self._student_calls[level] for level in self.pairs.student)]

    def cross_logits(self, teacher: nn.Module, features: List[Tensor]) -> List[Tensor]:
        """(N, A_t*C, H, W) teacher-layout logits of the student's features: adapter, then
        the teacher's classifier of the paired level (frozen, differentiable)."""
        reader, head = self.readers[1], teacher.bbox_head
        return [reader.classifier(head, level)(adapter(feature))
                for level, adapter, feature in zip(self.pairs.teacher, self.adapters, features)]

    def losses(self, student: nn.Module, teacher: nn.Module, records: Dict[str, Record],
               teacher_out: Any, data_samples: List, loss_cls: nn.Module) -> Dict[str, Tensor]:
        maps = self.cross_logits(teacher, self.student_features(records))
        check_sizes(maps, teacher_out['sizes'], self.pairs.strides)
        return dict(loss_dist_cls=self.rows.loss(loss_cls, maps, teacher_out['rows'],
                                                 data_samples))
