# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""How mmdist reads a dense head family: its class logits, its classification branch
alone, and the classifier that cross-head distillation runs on other features.

A reader is stateless (the head is passed to every method) and reproduces one head
class's own ``forward``. :func:`head_reader` picks the reader of a head from
:data:`READERS`; a family is added by registering one more reader
(:func:`register_reader`). Heads are read level by level: ``level`` indexes the head's
own FPN levels (``head.prior_generator.strides``).
"""
from typing import List, Optional, Sequence, Tuple

from mmdet.models.dense_heads import ATSSHead, FCOSHead, GFLHead, RetinaHead
from torch import Tensor, nn


class DenseHeadReader:
    """The reader of one dense head class (and subclasses that keep its ``forward``).

    The default reads heads that compute each level's class logits as
    ``classifier(cls_convs(x))`` with one classifier conv shared by all levels (the
    stock RetinaNet, FCOS, ATSS and GFL heads).

    Args:
        head_type: the head class whose ``forward`` this reader reproduces.
        classifier: attribute name of the final classifier conv.
        strides_key: where the strides are set in the head's config (for messages).
    """

    #: Whether the head has a separate objectness output that ``score='joint'`` combines
    #: with the class logits (YOLOX).
    has_objectness = False
    #: Whether cross-head distillation can run this head's classifier on other features.
    cross_head = True

    def __init__(self, head_type: type, classifier: str,
                 strides_key: str = 'anchor_generator.strides') -> None:
        self.head_type = head_type
        self.classifier_name = classifier
        self.strides_key = strides_key

    @property
    def name(self) -> str:
        return self.head_type.__name__

    def reproduces(self, head: nn.Module) -> bool:
        """Whether ``head`` runs this reader's ``forward`` (not one of its own)."""
        head_class = type(head)
        return (isinstance(head, self.head_type)
                and head_class.forward is self.head_type.forward
                and getattr(head_class, 'forward_single', None) is getattr(
                    self.head_type, 'forward_single', None))

    # ----------------------------------------------------------------- per level
    def cls_features(self, head: nn.Module, x: Tensor, level: int) -> Tensor:
        """(N, F, H, W) input of the classifier: ``x`` through the class-branch convs."""
        for conv in head.cls_convs:
            x = conv(x)
        return x

    def classifier(self, head: nn.Module, level: int) -> nn.Module:
        """The conv mapping :meth:`cls_features` to (N, A*C, H, W) class logits."""
        return getattr(head, self.classifier_name)

    def cls_channels(self, head: nn.Module) -> int:
        """F, the channels of :meth:`cls_features`."""
        return head.feat_channels

    # ----------------------------------------------------------------- all levels
    def score_logits(self, head: nn.Module, feats: Sequence[Tensor], levels: Sequence[int],
                     score: str) -> List[Tensor]:
        """The (N, A*C, H, W) logits that distillation compares at ``levels``, computed
        by the classification branch alone (the teacher's side).

        Args:
            head: the head.
            feats: the head's input, one (N, C_in, H, W) map per level.
            levels: the levels to compute.
            score: ``'class'`` or ``'joint'`` (readers with ``has_objectness``).
        """
        return [self.classifier(head, level)(self.cls_features(head, feats[level], level))
                for level in levels]

    def output_logits(self, output: Tuple, levels: Sequence[int], score: str) -> List[Tensor]:
        """The same logits read from the head's recorded ``forward`` output."""
        return [output[0][level] for level in levels]


class WholeHeadReader(DenseHeadReader):
    """A subclass of a supported head with its own ``forward`` (e.g. TOOD, VFNet): its
    class scores may depend on the box branch, so the whole head runs and its first
    output (per-level class logits) is compared; it has no classifier to run on other
    features."""

    cross_head = False

    def __init__(self) -> None:
        super().__init__(nn.Module, '', '')

    def score_logits(self, head, feats, levels, score):
        return self.output_logits(head(feats), levels, score)

    def classifier(self, head, level):
        raise TypeError(f'{type(head).__name__} computes its class logits in its own '
                        'forward; mmdist has no classifier of it to run')


#: Registered readers; :func:`head_reader` tries them in order.
READERS: List[DenseHeadReader] = []
WHOLE_HEAD = WholeHeadReader()


def register_reader(reader: DenseHeadReader) -> DenseHeadReader:
    """Add ``reader`` to :data:`READERS` (one per head class)."""
    READERS.append(reader)
    return reader


def head_reader(head: Optional[nn.Module]) -> Optional[DenseHeadReader]:
    """The reader of ``head``: the registered one that reproduces its ``forward``, else
    :data:`WHOLE_HEAD` for a subclass of a registered head class, else ``None``."""
    if head is None:
        return None
    for reader in READERS:
        if reader.reproduces(head):
            return reader
    if isinstance(head, tuple(reader.head_type for reader in READERS)):
        return WHOLE_HEAD
    return None


def supported_heads() -> str:
    """The registered head classes, for messages."""
    return ', '.join(reader.name for reader in READERS)


for _head, _classifier, _strides in ((RetinaHead, 'retina_cls', 'anchor_generator.strides'),
                                     (FCOSHead, 'conv_cls', 'strides'),
                                     (ATSSHead, 'atss_cls', 'anchor_generator.strides'),
                                     (GFLHead, 'gfl_cls', 'anchor_generator.strides')):
    register_reader(DenseHeadReader(_head, _classifier, _strides))
