# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""The per-family part of :class:`~mmdist.models.distillers.DetectionDistiller`: a unit
checks a student/teacher pair when the distiller is built, says what the teacher
computes and what of the student is recorded, and computes the distillation losses.

The distiller picks the one registered unit that applies to its student and options
(:func:`build_unit`); a family (a head type, or a way of pairing heads) is added by
registering one more unit (:func:`register_unit`).
"""
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from torch import Tensor, nn

from mmdist.models.utils.recorder import Record


@dataclass(frozen=True)
class HeadOptions:
    """The distiller's options that the units read (see ``DetectionDistiller``)."""

    dense_rows: str = 'anchor'
    mask_padding: bool = True
    cross_head: bool = False
    score: Optional[str] = None
    query_layers: str = 'last'
    loss_bbox: Optional[dict] = None
    loss_iou: Optional[dict] = None


class DetectionUnit(nn.Module):
    """One way of distilling a student detector from a teacher.

    A unit is an ``nn.Module`` so that trainable parts it owns (e.g. the cross-head
    adapters) are the distiller's parameters and in its checkpoints. It keeps no
    reference to the student or the teacher: they are passed to each call.

    Attributes set by ``__init__``:
        activation: ``'sigmoid'`` or ``'softmax'``, what ``loss_cls`` must apply.
        activation_source: where that activation comes from (for messages).
    """

    #: The loss keys that :meth:`losses` returns.
    loss_names = ('loss_dist_cls', )
    #: Whether ``loss_cls`` is called with all FPN levels at once (``groups=``).
    grouped = False

    activation: str
    activation_source: str

    @classmethod
    def applies(cls, student: nn.Module, options: HeadOptions) -> bool:
        """Whether this unit distils ``student`` with ``options``."""
        raise NotImplementedError

    @classmethod
    def supports(cls) -> Optional[str]:
        """The students it distils, for the error when no unit applies (``None``: none
        that another unit does not name)."""
        return None

    def teacher_forward(self, teacher: nn.Module, feats: tuple, data_samples: List) -> Any:
        """What distillation keeps of the teacher, from its neck's ``feats`` and the
        batch's ``data_samples`` (run under ``no_grad`` before the student's forward)."""
        raise NotImplementedError

    def student_records(self, student: nn.Module) -> Dict[str, nn.Module]:
        """name -> student module whose calls to record during its own ``loss()``."""
        raise NotImplementedError

    def losses(self, student: nn.Module, teacher: nn.Module, records: Dict[str, Record],
               teacher_out: Any, data_samples: List, loss_cls: nn.Module) -> Dict[str, Tensor]:
        """The :attr:`loss_names` terms."""
        raise NotImplementedError


#: Registered units; exactly one applies to a (student, options) pair.
UNITS: List[type] = []


def register_unit(unit: type) -> type:
    """Class decorator adding a :class:`DetectionUnit` to :data:`UNITS`."""
    UNITS.append(unit)
    return unit


def build_unit(student: nn.Module, teacher: nn.Module, options: HeadOptions) -> DetectionUnit:
    """The unit that applies to ``student`` and ``options``, built for this pair."""
    for unit in UNITS:
        if unit.applies(student, options):
            return unit(student, teacher, options)
    head = getattr(student, 'roi_head', None) or getattr(student, 'bbox_head', None)
    kind = type(head).__name__ if head is not None else 'no bbox_head/roi_head'
    supported = '; '.join(unit.supports() for unit in UNITS if unit.supports())
    raise TypeError(f'model.student: head {kind} is not supported; supported: {supported}')
