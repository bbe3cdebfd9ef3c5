# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Tiny versions of the shipped models, for tests and CPU benchmarks.

They shrink stock OpenMMLab model configs in place (ResNet-18 of a few channels, small
necks and heads, no pretrained weights) so a training step takes well under a second on
a CPU, while keeping every module type of the real model.
"""
import os.path as osp
from typing import Optional

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmdist.datasets import SHAPE_CLASSES
from mmdist.registry import MODELS

#: Crop (height, width) of the tiny segmentation models.
SEG_CROP = (32, 64)


def shipped_config_dir(name: str) -> str:
    """``configs/<name>`` as installed with mmdist (``mmdist/.mim/configs``, a link to the
    checkout's ``configs/`` in an editable install)."""
    return osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), '.mim', 'configs', name)


def tiny_resnet(base_channels: int) -> dict:
    """A ResNet-18 with ``base_channels`` stem width and no pretrained init."""
    return dict(_delete_=True, type='ResNet', depth=18, base_channels=base_channels,
                num_stages=4, out_indices=(0, 1, 2, 3), frozen_stages=-1,
                norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False,
                style='pytorch', init_cfg=None)


def tiny_fpn(base_channels: int, out_channels: int) -> dict:
    return dict(in_channels=[base_channels * 2**i for i in range(4)],
                out_channels=out_channels)


def tiny_retinanet(base_channels: int, width: int, **head) -> dict:
    """Overrides of a stock ResNet-FPN dense detector (RetinaNet, ATSS, GFL, FCOS); ``head``:
    more settings of its ``bbox_head``."""
    return dict(backbone=tiny_resnet(base_channels), neck=tiny_fpn(base_channels, width),
                bbox_head=dict(num_classes=len(SHAPE_CLASSES), in_channels=width,
                               feat_channels=width, stacked_convs=1, **head))


#: GroupNorm for the narrow heads of tiny ATSS / GFL / FCOS models (stock: 32 groups).
TINY_GN = dict(norm_cfg=dict(type='GN', num_groups=4, requires_grad=True))


def _csp_levels(widen_factor: float) -> list:
    """Channels of the P3-P5 outputs of a CSPNeXt / CSPDarknet (P5 arch) backbone."""
    return [int(c * widen_factor) for c in (256, 512, 1024)]


#: BatchNorm for the tiny CSP models (the stock RTMDet configs use SyncBN).
_BN = dict(type='BN', momentum=0.03, eps=0.001)


def tiny_rtmdet(widen_factor: float, width: int) -> dict:
    """Overrides of a stock RTMDet model: CSPNeXt of ``widen_factor`` (1 block per stage),
    a CSPNeXtPAFPN and RTMDetSepBNHead of ``width`` channels, BatchNorm, no pretrained
    weights."""
    return dict(backbone=dict(deepen_factor=0.167, widen_factor=widen_factor, norm_cfg=_BN,
                              init_cfg=None),
                neck=dict(in_channels=_csp_levels(widen_factor), out_channels=width,
                          num_csp_blocks=1, norm_cfg=_BN),
                bbox_head=dict(num_classes=len(SHAPE_CLASSES), in_channels=width,
                               feat_channels=width, norm_cfg=_BN))


def tiny_yolox(widen_factor: float, width: int) -> dict:
    """Overrides of a stock YOLOX model: CSPDarknet of ``widen_factor``, a YOLOXPAFPN and
    YOLOXHead of ``width`` channels, no batch resizing."""
    return dict(data_preprocessor=dict(batch_augments=None),
                backbone=dict(deepen_factor=0.33, widen_factor=widen_factor),
                neck=dict(in_channels=_csp_levels(widen_factor), out_channels=width,
                          num_csp_blocks=1),
                bbox_head=dict(num_classes=len(SHAPE_CLASSES), in_channels=width,
                               feat_channels=width))


def _tiny_transformer(embed_dims: int, levels: int, ffn: int, encoder_layers: int,
                      decoder_layers: int) -> dict:
    """Encoder / decoder overrides of a DETR-family model (stock layer types)."""
    def layer(**attention):
        return dict(**attention, ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=ffn))

    if levels:  # deformable attention over ``levels`` feature levels
        deformable = dict(embed_dims=embed_dims, num_levels=levels)
        return dict(
            num_feature_levels=levels,
            encoder=dict(num_layers=encoder_layers, layer_cfg=layer(self_attn_cfg=deformable)),
            decoder=dict(num_layers=decoder_layers, layer_cfg=layer(
                self_attn_cfg=dict(embed_dims=embed_dims), cross_attn_cfg=deformable)))
    attention = dict(embed_dims=embed_dims)
    return dict(encoder=dict(num_layers=encoder_layers, layer_cfg=layer(self_attn_cfg=attention)),
                decoder=dict(num_layers=decoder_layers, layer_cfg=layer(
                    self_attn_cfg=attention, cross_attn_cfg=attention)))


def tiny_detr(base_channels: int, queries: int, levels: int = 0, embed_dims: int = 32,
              ffn: int = 32, encoder_layers: int = 1, decoder_layers: int = 2,
              backbone: Optional[dict] = None, **model) -> dict:
    """Overrides of a stock DETR-family model (DETR, Deformable DETR, DINO): a ResNet-18
    of ``base_channels`` (its last ``min(levels, 3)`` stages, at least one; ``backbone``:
    another backbone with ``out_channels``), ``levels`` feature levels (0: DETR's single
    map and plain attention; levels beyond the backbone's are the neck's extra
    convolutions), few layers and ``queries`` queries. DINO's decoder needs
    ``embed_dims=256``; ``model``: more overrides."""
    stages = min(max(levels, 1), 3)
    if backbone is None:
        backbone = dict(tiny_resnet(base_channels), out_indices=tuple(range(4 - stages, 4)))
        in_channels = [base_channels * 2**i for i in range(4 - stages, 4)]
    else:
        backbone = dict(backbone)
        in_channels = backbone.pop('out_channels')
    groups = dict(norm_cfg=dict(type='GN', num_groups=8)) if levels else {}
    model.setdefault('test_cfg', dict(max_per_img=queries))  # stock: 100 or 300 boxes
    return dict(num_queries=queries, backbone=backbone,
                neck=dict(in_channels=in_channels, out_channels=embed_dims,
                          num_outs=max(levels, 1), **groups),
                positional_encoding=dict(num_feats=embed_dims // 2),
                bbox_head=dict(num_classes=len(SHAPE_CLASSES), embed_dims=embed_dims),
                **_tiny_transformer(embed_dims, levels, ffn, encoder_layers, decoder_layers),
                **model)


def tiny_swin(embed_dims: int, num_outs: int = 4) -> dict:
    """A Swin Transformer of ``embed_dims`` (one block per stage, window 4, no pretrained
    weights); ``out_channels``: its outputs' channels, read by :func:`tiny_detr`."""
    return dict(_delete_=True, type='SwinTransformer', embed_dims=embed_dims,
                depths=[1, 1, 1, 1], num_heads=[1, 2, 2, 4], window_size=4,
                out_indices=tuple(range(4 - num_outs, 4)), with_cp=False, init_cfg=None,
                out_channels=[embed_dims * 2**i for i in range(4 - num_outs, 4)])


def tiny_two_stage(cfg: Config, base_channels: int, width: int) -> None:
    """Shrink a Faster / Cascade (Mask) R-CNN model config in place."""
    model = cfg.model
    model.backbone = {k: v for k, v in tiny_resnet(base_channels).items() if k != '_delete_'}
    model.neck.update(tiny_fpn(base_channels, width))
    model.rpn_head.update(in_channels=width, feat_channels=width)
    roi = model.roi_head
    roi.bbox_roi_extractor.out_channels = width
    heads = roi.bbox_head if isinstance(roi.bbox_head, list) else [roi.bbox_head]
    for head in heads:
        head.update(in_channels=width, fc_out_channels=32, num_classes=len(SHAPE_CLASSES))
    if 'mask_head' in roi:
        roi.mask_roi_extractor.out_channels = width
        roi.mask_head.update(in_channels=width, conv_out_channels=width,
                             num_classes=len(SHAPE_CLASSES))
    # Few proposals and samples keep the CPU step short.
    model.train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=64)
    samplers = model.train_cfg.rcnn if isinstance(model.train_cfg.rcnn, list) else [
        model.train_cfg.rcnn]
    for rcnn in samplers:
        rcnn.sampler.num = 32
    model.test_cfg.rpn.update(nms_pre=200, max_per_img=64)


def shrink_segmentor(cfg: Config, width: int) -> None:
    """Shrink an mmseg ResNetV1c-d8 EncoderDecoder (DeepLabV3 / PSPNet) in place."""
    model = cfg.model
    model.pretrained = None
    model.backbone.update(depth=18, stem_channels=width, base_channels=width, init_cfg=None)
    model.data_preprocessor.size = SEG_CROP
    model.decode_head.update(in_channels=width * 8, channels=width * 2)
    model.auxiliary_head.update(in_channels=width * 4, channels=width)


def shrink_segformer(cfg: Config, embed_dims: int) -> None:
    """Shrink an mmseg SegFormer (MixVisionTransformer + SegformerHead) in place: one
    layer per stage, stage widths ``embed_dims * num_heads`` (B0-B5 heads: 1, 2, 5, 8)."""
    model = cfg.model
    model.pretrained = None
    model.backbone.update(embed_dims=embed_dims, num_layers=[1, 1, 1, 1], init_cfg=None)
    model.data_preprocessor.size = SEG_CROP
    model.decode_head.update(in_channels=[embed_dims * h for h in model.backbone.num_heads],
                             channels=embed_dims * 2)
    model.test_cfg = dict(mode='whole')


def shrink_mask2former(cfg: Config, width: int, queries: int = 4) -> None:
    """Shrink an mmseg Mask2Former (ResNet or Swin backbone) in place: a ResNet-18 of
    ``width`` channels (or a one-block-per-stage Swin of ``width`` channels), a 32-channel
    pixel decoder and transformer decoder of one layer each, ``queries`` queries."""
    model = cfg.model
    if model.backbone.type == 'SwinTransformer':
        model.backbone.update(embed_dims=width, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
                              window_size=4, pretrain_img_size=SEG_CROP[0], init_cfg=None)
    else:
        model.backbone.update(depth=18, base_channels=width, init_cfg=None)
    model.data_preprocessor.size = SEG_CROP
    head, channels = model.decode_head, 32  # GroupNorm(32) in the pixel decoder
    head.update(in_channels=[width * 2**i for i in range(4)], feat_channels=channels,
                out_channels=channels, num_queries=queries)
    head.pixel_decoder.encoder.update(num_layers=1)
    head.pixel_decoder.encoder.layer_cfg.self_attn_cfg.update(embed_dims=channels,
                                                              num_heads=4)
    head.pixel_decoder.encoder.layer_cfg.ffn_cfg.update(embed_dims=channels,
                                                        feedforward_channels=channels * 2)
    head.pixel_decoder.positional_encoding.num_feats = channels // 2
    head.positional_encoding.num_feats = channels // 2
    decoder = head.transformer_decoder
    decoder.num_layers = 1
    for attn in ('self_attn_cfg', 'cross_attn_cfg'):
        decoder.layer_cfg[attn].update(embed_dims=channels, num_heads=4)
    decoder.layer_cfg.ffn_cfg.update(embed_dims=channels, feedforward_channels=channels * 2)
    head.train_cfg.num_points = 64


def write_config(path: str, text: str) -> str:
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
    return path


def init_weights_of_unowned_parameters(model: torch.nn.Module) -> None:
    """Give mmdet's / mmseg's initialisation (``model.init_weights()``) only to the
    parameters no PyTorch layer owns; every layer with PyTorch's ``reset_parameters``
    (convolutions, linear layers, norms, embeddings) keeps the values it was built with.

    Some parameters are created uninitialised and drawn only by ``init_weights``, as
    DINO's and Deformable DETR's ``level_embed`` (``torch.Tensor(levels, dims)``: whatever
    the memory held, at times NaN).
    """
    pytorch_init = {
        f'{prefix}.{name}' if prefix else name: param.detach().clone()
        for prefix, module in model.named_modules() if hasattr(module, 'reset_parameters')
        for name, param in module.named_parameters(recurse=False)}
    model.init_weights()
    model.load_state_dict(pytorch_init, strict=False)


def save_teacher_checkpoint(teacher_cfg: str, path: str, seed: int = 123,
                            scope: str = 'mmdet', init_weights: bool = True) -> str:
    """Build the teacher config's model with a fixed seed and save a plain checkpoint;
    ``init_weights=False`` keeps PyTorch's initialisation of its layers (class logits that
    vary, where mmdet's initialises dense classifiers to a near-constant prior), and gives
    mmdet's initialisation only to the parameters no PyTorch layer owns (some are created
    uninitialised, as DINO's ``level_embed``: whatever the memory held, at times NaN)."""
    cfg = Config.fromfile(teacher_cfg)
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(cfg.model)
    if init_weights:
        model.init_weights()
    else:
        init_weights_of_unowned_parameters(model)
    torch.save(dict(meta=dict(note='tiny test teacher'), state_dict=model.state_dict()), path)
    return path
