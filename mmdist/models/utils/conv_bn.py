# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Fold a frozen network's eval-mode BatchNorms into the convolutions that feed them.

In eval mode ``bn(conv(x)) = conv'(x)`` with ``w' = w * s`` and
``b' = (b - running_mean) * s + beta``, ``s = gamma / sqrt(running_var + eps)`` per output
channel: one operation instead of two, the same values up to float rounding.

Only pairs whose data flow is known are folded, so that the convolution's output feeds
the BatchNorm and nothing else (mmcv's ``fuse_conv_bn`` pairs a BatchNorm with the conv
registered before it, which is not always the one that feeds it):

- adjacent children of an ``nn.Sequential`` (and of subclasses keeping its ``forward``);
- the ``conv`` and ``norm`` of an mmcv ``ConvModule`` whose ``order`` runs them in turn;
- ``conv1``/``norm1``, ``conv2``/``norm2``, ``conv3``/``norm3`` of the ResNet blocks and the
  ResNet stem of mmdet, mmseg and mmpretrain (and of subclasses keeping their ``forward``,
  such as ResNeXt's blocks).

The convolution must be a plain ``nn.Conv2d`` (or mmcv's ``Conv2d`` wrapper); weight-
standardised and deformable convolutions are left alone, as are modules registered in
more than one place and any other module.
"""
import importlib
from collections import Counter
from functools import lru_cache
from typing import Iterator, List, Optional, Tuple

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

#: (module path, class name, (conv attribute, norm-name attribute) pairs). The norm is
#: ``getattr(block, getattr(block, norm_name_attr))``, as the blocks' properties read it.
_RESNET_PARTS = (
    ('BasicBlock', (('conv1', 'norm1_name'), ('conv2', 'norm2_name'))),
    ('Bottleneck', (('conv1', 'norm1_name'), ('conv2', 'norm2_name'),
                    ('conv3', 'norm3_name'))),
    ('ResNet', (('conv1', 'norm1_name'), )),  # the stem, unless deep_stem
)
_RESNET_MODULES = ('mmdet.models.backbones.resnet', 'mmseg.models.backbones.resnet',
                   'mmpretrain.models.backbones.resnet')

Pair = Tuple[nn.Module, str, str]  # (parent, conv attribute, norm attribute)


@lru_cache(maxsize=None)
def _known_blocks() -> Tuple[Tuple[type, Tuple[Tuple[str, str], ...]], ...]:
    """(class, pairs) of the ResNet blocks and stems of the installed OpenMMLab packages."""
    known = []
    for module_name in _RESNET_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for class_name, pairs in _RESNET_PARTS:
            known.append((getattr(module, class_name), pairs))
    return tuple(known)


@lru_cache(maxsize=None)
def _plain_conv_forwards() -> Tuple:
    forwards = [nn.Conv2d.forward]
    try:
        from mmcv.cnn.bricks.wrappers import Conv2d
        forwards.append(Conv2d.forward)
    except ImportError:
        pass
    return tuple(forwards)


@lru_cache(maxsize=None)
def _conv_module_class() -> Optional[type]:
    try:
        from mmcv.cnn import ConvModule
    except ImportError:
        return None
    return ConvModule


def _is_plain_conv(module: nn.Module) -> bool:
    cls = type(module)
    return (isinstance(module, nn.Conv2d) and cls.forward in _plain_conv_forwards()
            and cls._conv_forward is nn.Conv2d._conv_forward)


def _is_eval_batch_norm(module: nn.Module) -> bool:
    return (isinstance(module, _BatchNorm) and not module.training
            and module.running_mean is not None and module.running_var is not None
            and type(module).forward in (_BatchNorm.forward, nn.SyncBatchNorm.forward))


def _candidate_pairs(module: nn.Module) -> Iterator[Pair]:
    """(parent, conv attribute, norm attribute) pairs whose data flow ``module``'s own
    forward fixes: conv output -> norm input, used nowhere else."""
    cls = type(module)
    if isinstance(module, nn.Sequential) and cls.forward is nn.Sequential.forward:
        names = list(module._modules)
        yield from ((module, a, b) for a, b in zip(names, names[1:]))
        return
    ConvModule = _conv_module_class()
    if ConvModule is not None and isinstance(module, ConvModule):
        order = list(module.order)
        if (cls.forward is ConvModule.forward and module.with_norm
                and module.efficient_conv_bn_eval_forward is None
                and order.index('norm') == order.index('conv') + 1):
            yield module, 'conv', module.norm_name
        return
    for block, pairs in _known_blocks():
        if isinstance(module, block) and cls.forward is block.forward:
            if getattr(module, 'deep_stem', False):  # the stem is a Sequential then
                return
            for conv, norm_name in pairs:
                if hasattr(module, conv) and hasattr(module, norm_name):
                    yield module, conv, getattr(module, norm_name)
            return


@torch.no_grad()
def _fold(conv: nn.Conv2d, bn: _BatchNorm) -> None:
    """Make ``conv`` compute ``bn(conv(x))`` (``bn`` in eval mode), in place."""
    dtype = conv.weight.dtype
    std = (bn.running_var.double() + bn.eps).sqrt()
    scale = (bn.weight.double() / std) if bn.affine else 1 / std
    shift = bn.bias.double() if bn.affine else torch.zeros_like(scale)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
    weight = conv.weight.double() * scale.view(-1, *([1] * (conv.weight.dim() - 1)))
    conv.weight = nn.Parameter(weight.to(dtype), requires_grad=False)
    conv.bias = nn.Parameter(((bias - bn.running_mean.double()) * scale + shift).to(dtype),
                             requires_grad=False)


def fold_batch_norms(model: nn.Module) -> int:
    """Fold every eval-mode BatchNorm of ``model`` that directly follows a plain conv.

    Each folded BatchNorm is replaced by ``nn.Identity`` and its convolution gets the
    folded weight and bias (frozen). Use it only on a network that stays in eval mode,
    such as a distillation teacher.

    Args:
        model: the network, in eval mode.

    Returns:
        The number of BatchNorms folded.
    """
    # A conv or BatchNorm registered in two places may run without its partner in one.
    seen = Counter(id(m) for _, m in model.named_modules(remove_duplicate=False))
    pairs: List[Pair] = []
    for module in model.modules():
        for parent, conv_name, norm_name in _candidate_pairs(module):
            conv = getattr(parent, conv_name, None)
            norm = getattr(parent, norm_name, None)
            if (_is_plain_conv(conv) and _is_eval_batch_norm(norm)
                    and norm.num_features == conv.out_channels
                    and seen[id(conv)] == 1 and seen[id(norm)] == 1):
                pairs.append((parent, conv_name, norm_name))
    for parent, conv_name, norm_name in pairs:
        _fold(getattr(parent, conv_name), getattr(parent, norm_name))
        setattr(parent, norm_name, nn.Identity())
    return len(pairs)
