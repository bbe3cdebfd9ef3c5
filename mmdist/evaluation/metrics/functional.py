# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Binning, calibration errors from binned sums, greedy box matching and AP from score
histograms: the pieces the faithfulness metrics are built from (formulas in
docs/faithfulness.md)."""
from typing import Optional, Tuple

import numpy as np
import torch
from torch import Tensor


def bin_index(conf: Tensor, num_bins: int) -> Tensor:
    """Bin of each confidence: ``[i/B, (i+1)/B) -> i`` and exactly 1 -> ``B``.

    ``B + 1`` buckets, as torchmetrics' ``MulticlassCalibrationError`` bins confidences
    (``torch.bucketize`` on ``linspace(0, 1, B + 1)`` in the confidences' dtype), so the
    calibration errors here equal torchmetrics' on the same confidences.
    """
    bounds = torch.linspace(0, 1, num_bins + 1, dtype=conf.dtype, device=conf.device)
    return (torch.bucketize(conf, bounds, right=True) - 1).clamp_(0, num_bins)


def calibration_error(count: np.ndarray, conf: np.ndarray, hit: np.ndarray) -> float:
    """Expected calibration error from (B,) per-bin sums of count, confidence and hits.

    ``sum_b |sum hit - sum conf| / N`` = ``sum_b (n_b / N) |mean hit_b - mean conf_b|``.
    NaN when there is no sample.
    """
    if count.ndim != 1:
        raise ValueError(f'expected (bins,) sums, got shape {count.shape}')
    total = count.sum()
    if total == 0:
        return float('nan')
    return float(np.abs(hit - conf).sum() / total)


def overconfidence_error(count: np.ndarray, conf: np.ndarray, hit: np.ndarray) -> float:
    """``sum_b (n_b / N) * conf_b * max(conf_b - acc_b, 0)`` from (B,) per-bin sums."""
    if count.ndim != 1:
        raise ValueError(f'expected (bins,) sums, got shape {count.shape}')
    total = count.sum()
    if total == 0:
        return float('nan')
    safe = np.maximum(count, 1)
    return float((conf * np.clip(conf - hit, 0, None) / safe).sum() / total)


def box_iou(boxes1: np.ndarray, boxes2: np.ndarray, mode: str = 'iou') -> np.ndarray:
    """(n, m) IoU (or IoF: intersection over the area of ``boxes1``) of xyxy boxes."""
    boxes1 = np.asarray(boxes1, dtype=np.float64).reshape(-1, 4)
    boxes2 = np.asarray(boxes2, dtype=np.float64).reshape(-1, 4)
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    lt = np.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    rb = np.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    denom = area1[:, None] if mode == 'iof' else area1[:, None] + area2[None, :] - inter
    return np.where(denom > 0, inter / np.maximum(denom, 1e-12), 0.0)


def greedy_match(det_boxes: np.ndarray, det_scores: np.ndarray, det_labels: np.ndarray,
                 gt_boxes: np.ndarray, gt_labels: np.ndarray,
                 iou_thr: float) -> np.ndarray:
    """COCO-style matching of one image: detections in descending score order each take the
    unmatched same-class box of highest IoU, if that IoU is ``>= iou_thr``.

    Returns:
        (n,) index of the matched box per detection, -1 when unmatched.
    """
    num_det = len(det_scores)
    match = np.full(num_det, -1, dtype=np.int64)
    if num_det == 0 or len(gt_labels) == 0:
        return match
    ious = box_iou(det_boxes, gt_boxes)
    ious[np.asarray(det_labels)[:, None] != np.asarray(gt_labels)[None, :]] = -1.0
    taken = np.zeros(len(gt_labels), dtype=bool)
    for i in np.argsort(-np.asarray(det_scores), kind='mergesort'):
        candidates = np.where(taken, -1.0, ious[i])
        j = int(np.argmax(candidates))
        if candidates[j] >= iou_thr:
            match[i] = j
            taken[j] = True
    return match


def average_precision(tp_hist: np.ndarray, fp_hist: np.ndarray,
                      num_pos: np.ndarray) -> Tuple[float, np.ndarray]:
    """COCO 101-point interpolated AP per class from score histograms.

    Args:
        tp_hist, fp_hist: (C, A) true / false positives per class and score bin
            (bin ``a`` holds scores in ``[a/A, (a+1)/A)``).
        num_pos: (C,) boxes to find per class.

    Returns:
        (mean AP over classes with boxes, (C,) AP with NaN for classes without boxes).
        Detections within one score bin count as tied: precision and recall are taken
        at bin boundaries, which equals COCO's AP when each bin holds only true or only
        false positives.
    """
    rec_thrs = np.linspace(0.0, 1.0, 101)
    per_class = np.full(len(num_pos), np.nan)
    for c, npos in enumerate(num_pos):
        if npos <= 0:
            continue
        tps, fps = tp_hist[c][::-1], fp_hist[c][::-1]
        used = (tps + fps) > 0
        tp, fp = np.cumsum(tps)[used], np.cumsum(fps)[used]
        recall = tp / npos
        precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        precision = np.maximum.accumulate(precision[::-1])[::-1]
        inds = np.searchsorted(recall, rec_thrs, side='left')
        values = np.zeros_like(rec_thrs)
        valid = inds < len(precision)
        values[valid] = precision[inds[valid]]
        per_class[c] = values.mean()
    present = ~np.isnan(per_class)
    mean = float(per_class[present].mean()) if present.any() else float('nan')
    return mean, per_class


def to_numpy(value) -> Optional[np.ndarray]:
    """Tensor / box structure / array -> numpy (None stays None)."""
    if value is None:
        return None
    value = getattr(value, 'tensor', value)  # mmdet box structures
    if isinstance(value, Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)
