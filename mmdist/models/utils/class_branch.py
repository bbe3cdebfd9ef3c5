# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""A dense head's classification branch alone: distilling class logits does not need the
teacher's box regression, which is a large share of a dense detector's head."""
from typing import List, Optional, Sequence

from mmdet.models.dense_heads import ATSSHead, FCOSHead, GFLHead, RetinaHead
from torch import Tensor, nn

#: Head classes whose ``forward`` maps each level through ``cls_convs`` and then one
#: classifier conv to the class logits, independently of the box branch; with the name
#: of that classifier.
_CLASSIFIERS = {RetinaHead: 'retina_cls', FCOSHead: 'conv_cls', ATSSHead: 'atss_cls',
                GFLHead: 'gfl_cls'}


def classifier_name(head: nn.Module) -> Optional[str]:
    """The attribute name of the final classifier conv if the head computes its class
    logits as ``classifier(cls_convs(x))`` per level (the stock RetinaNet, FCOS, ATSS
    and GFL heads, and subclasses that keep their ``forward``), else ``None``.

    A subclass that overrides ``forward`` or ``forward_single`` (e.g. TOOD, VFNet) may
    compute its class logits otherwise, so it gets ``None``.
    """
    for base, name in _CLASSIFIERS.items():
        if (isinstance(head, base) and type(head).forward is base.forward
                and type(head).forward_single is base.forward_single):
            return name
    return None


def dense_class_logits(head: nn.Module, feats: Sequence[Tensor],
                       classifier: Optional[str]) -> List[Tensor]:
    """The (N, A*C, H, W) class logits of each level, ``head(feats)[0]``.

    With ``classifier`` (from :func:`classifier_name`) only the classification branch
    runs; otherwise the whole head does.
    """
    if classifier is None:
        return list(head(feats)[0])
    conv_cls = getattr(head, classifier)
    logits = []
    for x in feats:
        for conv in head.cls_convs:
            x = conv(x)
        logits.append(conv_cls(x))
    return logits
