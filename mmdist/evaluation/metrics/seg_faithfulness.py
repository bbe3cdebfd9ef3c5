# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Faithfulness and calibration of a segmentation student against its teacher, per pixel."""
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from torch import Tensor

from mmdist.registry import METRICS
from .access import field, pixel_data
from .functional import bin_index, calibration_error, overconfidence_error
from .streaming import StreamingSumMetric, merge_sums


@METRICS.register_module()
class SegFaithfulnessMetric(StreamingSumMetric):
    """Pixel agreement, relative calibration and calibration of student and teacher.

    Reads, per data sample, ``seg_logits`` (the student's, from mmseg's ``predict``),
    ``teacher_seg_logits`` (attached by ``mmdist.PairedValLoop`` / ``PairedTestLoop``) and
    ``gt_sem_seg``. Metrics that need a missing input are left out: without a teacher (a
    plain loop) only the student's calibration is reported, without labels only the
    teacher-relative numbers. Pixels labelled ``ignore_index`` are excluded everywhere.
    All numbers are fractions in [0, 1] (KL in nats); formulas in docs/faithfulness.md.

    State per process: sums over (classes x bins) and (classes x classes) arrays, never
    pixels; logits are processed ``chunk_size`` pixels at a time.

    Args:
        num_bins: equal-width confidence bins of every calibration error (15).
        ignore_index: label of pixels to leave out (mmseg's 255).
        chunk_size: pixels processed at once (bounds the temporary memory).
        collect_device, prefix, collect_dir: see mmengine's ``BaseMetric``.
    """

    default_prefix = 'faith'

    def __init__(self,
                 num_bins: int = 15,
                 ignore_index: int = 255,
                 chunk_size: int = 1 << 16,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        if num_bins < 1:
            raise ValueError(f'num_bins must be >= 1, got {num_bins}')
        self.num_bins = num_bins
        self.ignore_index = ignore_index
        self.chunk_size = chunk_size

    # ----------------------------------------------------------------- accumulation
    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            student = pixel_data(field(sample, 'seg_logits'))
            if student is None:
                raise KeyError(f'{type(self).__name__}: data samples have no `seg_logits`; '
                               'it needs the predictions of an mmseg segmentor')
            teacher = pixel_data(field(sample, 'teacher_seg_logits'))
            label = pixel_data(field(sample, 'gt_sem_seg'))
            self.add_sample(self.sample_sums(student, teacher, label))

    @torch.no_grad()
    def sample_sums(self, student: Tensor, teacher: Optional[Tensor],
                    label: Optional[Tensor]) -> Dict[str, np.ndarray]:
        """Sums of one image: (C, H, W) student / teacher logits, (1, H, W) labels."""
        num_classes = student.shape[0]
        if num_classes < 2:
            raise ValueError(f'{type(self).__name__}: binary (single-channel) seg_logits are '
                             'not supported; softmax logits over >= 2 classes are needed')
        if teacher is not None and teacher.shape != student.shape:
            raise ValueError(f'{type(self).__name__}: teacher_seg_logits {tuple(teacher.shape)} '
                             f'and seg_logits {tuple(student.shape)} differ in shape')
        student = student.reshape(num_classes, -1)
        teacher = None if teacher is None else teacher.to(student.device).reshape(num_classes, -1)
        if label is not None:
            label = label.to(student.device).reshape(-1).long()
            if label.numel() != student.shape[1]:
                raise ValueError(f'{type(self).__name__}: gt_sem_seg has {label.numel()} pixels, '
                                 f'seg_logits {student.shape[1]}')
        sums: Dict[str, Tensor] = {}
        for start in range(0, student.shape[1], self.chunk_size):
            stop = start + self.chunk_size
            self._chunk(student[:, start:stop], None if teacher is None else
                        teacher[:, start:stop], None if label is None else label[start:stop],
                        sums)
        return {key: value.cpu().numpy() for key, value in sums.items()}

    def _chunk(self, s_logits: Tensor, t_logits: Optional[Tensor], label: Optional[Tensor],
               sums: Dict[str, Tensor]) -> None:
        num_classes = s_logits.shape[0]
        bins = self.num_bins + 1  # torchmetrics' binning: confidence 1 has its own bucket
        if label is not None:
            keep = label != self.ignore_index
            bad = keep & ((label < 0) | (label >= num_classes))
            if bad.any():
                raise ValueError(f'{type(self).__name__}: gt_sem_seg holds label '
                                 f'{int(label[bad][0])}, outside 0..{num_classes - 1} and not '
                                 f'ignore_index={self.ignore_index}')
            s_logits, label = s_logits[:, keep], label[keep]
            t_logits = None if t_logits is None else t_logits[:, keep]

        def add(key: str, index: Tensor, size: int, weights: Optional[Tensor] = None) -> None:
            w = None if weights is None else weights.double()
            value = torch.bincount(index, weights=w, minlength=size)
            if w is None:
                value = value.double()
            sums[key] = sums[key] + value if key in sums else value

        def add_scalar(key: str, value: Tensor) -> None:
            value = value.double().sum().reshape(1)
            sums[key] = sums[key] + value if key in sums else value

        log_ps = F.log_softmax(s_logits.float(), dim=0)
        p_s = log_ps.exp()
        k_s = s_logits.argmax(dim=0)  # mmseg's pred_sem_seg
        conf_s = p_s.gather(0, k_s[None])[0]
        bin_s = bin_index(conf_s, self.num_bins)

        if label is not None:  # calibration against the labels, per (label class, bin)
            index = label * bins + bin_s
            add('student_count', index, num_classes * bins)
            add('student_conf', index, num_classes * bins, conf_s)
            add('student_hit', index, num_classes * bins, k_s == label)
        if t_logits is None:
            return

        log_pt = F.log_softmax(t_logits.float(), dim=0)
        p_t = log_pt.exp()
        k_t = t_logits.argmax(dim=0)
        conf_t = p_t.gather(0, k_t[None])[0]
        agree = k_s == k_t
        add('confusion', k_t * num_classes + k_s, num_classes * num_classes)
        kl = torch.where(p_t > 0, p_t * (log_pt - log_ps), torch.zeros_like(p_t)).sum(0)
        add_scalar('kl', kl)
        add_scalar('gap', conf_t - p_s.gather(0, k_t[None])[0])
        # Relative calibration: student confidence as a predictor of agreeing with the
        # teacher, and per class, the student's p_s[k] against the teacher's p_t[k].
        add('rel_count', bin_s, bins)
        add('rel_conf', bin_s, bins, conf_s)
        add('rel_hit', bin_s, bins, agree)
        class_index = (torch.arange(num_classes, device=p_s.device)[:, None] * bins +
                       bin_index(p_s, self.num_bins)).reshape(-1)
        add('cw_count', class_index, num_classes * bins)
        add('cw_student', class_index, num_classes * bins, p_s.reshape(-1))
        add('cw_teacher', class_index, num_classes * bins, p_t.reshape(-1))
        if label is not None:
            index = label * bins + bin_index(conf_t, self.num_bins)
            add('teacher_count', index, num_classes * bins)
            add('teacher_conf', index, num_classes * bins, conf_t)
            add('teacher_hit', index, num_classes * bins, k_t == label)
            teacher_right = k_t == label
            add_scalar('teacher_right', teacher_right)
            add_scalar('agree_teacher_right', agree & teacher_right)

    # ----------------------------------------------------------------- results
    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        sums = merge_sums(results)
        bins = self.num_bins + 1
        metrics: Dict[str, float] = {}
        per_class: Dict[str, np.ndarray] = {}
        for model in ('student', 'teacher'):
            if f'{model}_count' not in sums:
                continue
            count, conf, hit = (sums[f'{model}_{key}'].reshape(-1, bins)
                                for key in ('count', 'conf', 'hit'))
            metrics[f'acc_{model}'] = float(hit.sum() / max(count.sum(), 1))
            metrics[f'ece_{model}'] = calibration_error(count.sum(0), conf.sum(0), hit.sum(0))
            class_ece = np.array([
                calibration_error(count[c], conf[c], hit[c]) for c in range(len(count))
            ])
            per_class[f'ECE {model}'] = class_ece
            present = count.sum(1) > 0
            metrics[f'cb_ece_{model}'] = float(class_ece[present].mean()) if present.any() \
                else float('nan')
            metrics[f'oe_{model}'] = overconfidence_error(count.sum(0), conf.sum(0),
                                                          hit.sum(0))
        if 'ece_student' in metrics and 'ece_teacher' in metrics:
            metrics['ece_diff'] = metrics['ece_student'] - metrics['ece_teacher']
        if 'confusion' in sums:
            confusion = sums['confusion']
            num_classes = int(round(np.sqrt(confusion.size)))
            confusion = confusion.reshape(num_classes, num_classes)  # rows: teacher
            pixels = confusion.sum()
            diag = np.diag(confusion)
            rows, cols = confusion.sum(1), confusion.sum(0)
            union = rows + cols - diag
            class_agree = np.where(rows > 0, diag / np.maximum(rows, 1), np.nan)
            class_iou = np.where(union > 0, diag / np.maximum(union, 1), np.nan)
            per_class['agreement'] = class_agree
            per_class['agreement IoU'] = class_iou
            metrics['agreement'] = float(diag.sum() / pixels) if pixels else float('nan')
            if 'teacher_right' in sums:
                right = float(sums['teacher_right'][0])
                metrics['agreement_teacher_correct'] = (
                    float(sums['agree_teacher_right'][0]) / right if right else float('nan'))
            metrics['agreement_class_macro'] = float(np.nanmean(class_agree)) if (
                rows > 0).any() else float('nan')
            metrics['agreement_mIoU'] = float(np.nanmean(class_iou)) if (
                union > 0).any() else float('nan')
            metrics['kl_teacher_student'] = float(sums['kl'][0] / pixels) if pixels else \
                float('nan')
            metrics['teacher_conf_gap'] = float(sums['gap'][0] / pixels) if pixels else \
                float('nan')
            metrics['rel_ece'] = calibration_error(sums['rel_count'], sums['rel_conf'],
                                                   sums['rel_hit'])
            cw_student = sums['cw_student'].reshape(num_classes, bins)
            cw_teacher = sums['cw_teacher'].reshape(num_classes, bins)
            metrics['rel_cw_ece'] = float(
                np.abs(cw_teacher - cw_student).sum() / (num_classes * pixels)) if pixels \
                else float('nan')
        self._log_table(metrics, per_class)
        return metrics

    def _log_table(self, metrics: Dict[str, float], per_class: Dict[str, np.ndarray]) -> None:
        if not metrics:
            print_log(f'{type(self).__name__}: nothing to report (no labels and no teacher '
                      'predictions)', logger='current')
            return
        lines = [f'{type(self).__name__} ({self.num_bins} bins, ignore_index='
                 f'{self.ignore_index}); teacher: '
                 + ('predictions from the paired loop' if 'agreement' in metrics else
                    'none (plain loop: student calibration only)')]
        if per_class:
            num_classes = len(next(iter(per_class.values())))
            names = list((self.dataset_meta or {}).get('classes') or
                         [str(c) for c in range(num_classes)])
            columns = list(per_class)
            lines.append(' | '.join(['class'.ljust(16)] + [c.rjust(13) for c in columns]))
            for c in range(num_classes):
                name = names[c] if c < len(names) else str(c)
                cells = [f'{per_class[col][c]:13.4f}' for col in columns]
                lines.append(' | '.join([str(name)[:16].ljust(16)] + cells))
        lines.append(', '.join(f'{key}: {value:.4f}' for key, value in metrics.items()))
        print_log('\n'.join(lines), logger='current')
