# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Validation / test loops that run the teacher next to the student on every batch.

``val_cfg = dict(type='mmdist.PairedValLoop')`` (or ``test_cfg = dict(type=
'mmdist.PairedTestLoop')``) evaluates a distiller as the stock loops do - the student's
predictions go to every metric unchanged - and additionally attaches the teacher's own
predictions on the same preprocessed batch to each data sample as ``teacher_<field>``
(``teacher_pred_instances``, ``teacher_seg_logits``, ``teacher_pred_sem_seg``, ...), which
the ``mmdist.*Faithfulness*`` metrics read. See docs/faithfulness.md.
"""
import copy
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.model import is_model_wrapper
from mmengine.runner import TestLoop, ValLoop
from mmengine.runner.amp import autocast

from mmdist.evaluation.input_perturbation import (attach_perturbed, parse_perturbation,
                                                  pgd_kind)
from mmdist.models.distillers import BaseDistiller
from mmdist.registry import LOOPS


def _plain(cfg):
    to_dict = getattr(cfg, 'to_dict', None)
    return to_dict() if callable(to_dict) else copy.deepcopy(cfg)


class PairedEvaluation:
    """The work shared by :class:`PairedValLoop` and :class:`PairedTestLoop`.

    Args:
        runner: the runner (its model must be an mmdist distiller).
        cfg_key: ``'val_cfg'`` or ``'test_cfg'`` (named in errors).
        loop_type: the loop's registered name (named in errors).
        perturbation: ``None`` or the config of
            :func:`~mmdist.evaluation.input_perturbation.parse_perturbation`.
        allow_pgd: whether this loop may run the PGD attack.
    """

    def __init__(self, runner, cfg_key: str, loop_type: str,
                 perturbation: Optional[dict], allow_pgd: bool) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not isinstance(model, BaseDistiller):
            raise TypeError(
                f"{cfg_key}.type='{loop_type}' evaluates a student against its teacher and "
                f'needs an mmdist distiller model (e.g. mmdist.SegmentationDistiller), got '
                f"{type(model).__name__}; use {cfg_key}=dict(type='"
                f"{loop_type.split('.')[-1].replace('Paired', '')}') for a plain model (the "
                'faithfulness metrics then report calibration only)')
        self.model = model
        self.cfg_key = cfg_key
        key = f'{cfg_key}.perturbation'
        self.perturbation = parse_perturbation(perturbation, key, allow_pgd, loop_type)
        if self.perturbation is not None and self.perturbation['pgd'] is not None:
            pgd_kind(model, f'{key}.pgd')  # fail at build time for unsupported models

    def model_info(self) -> Dict:
        return dict(student_test_cfg=_plain(getattr(self.model.student, 'test_cfg', None)),
                    teacher_test_cfg=_plain(getattr(self.model.teacher, 'test_cfg', None)),
                    perturbation=copy.deepcopy(self.perturbation))

    def announce(self, evaluator) -> None:
        """Tell the metrics that can use it which test configs and perturbation run."""
        info = self.model_info()
        for metric in getattr(evaluator, 'metrics', []):
            if callable(getattr(metric, 'set_model_info', None)):
                metric.set_model_info(info)

    def predict(self, idx: int, data_batch) -> List:
        """Student predictions with the teacher's (and perturbed ones) attached."""
        model = self.model
        data = model.data_preprocessor(data_batch, False)
        inputs, samples = data['inputs'], data.get('data_samples')
        # The student predicts into the batch's samples, exactly as in the stock loops
        # (so they keep the ground truth every metric reads); the teacher and the
        # perturbed passes get copies holding only the metainfo.
        outputs = model(**data, mode='predict')
        for output, teacher in zip(outputs, model.predict_teacher(inputs, samples)):
            for key in teacher.keys():  # data fields: the teacher's predictions
                output.set_field(teacher.get(key), 'teacher_' + key)
        if self.perturbation is not None:
            attach_perturbed(model, self.perturbation, idx, inputs, samples, outputs,
                             f'{self.cfg_key}.perturbation')
        return outputs


class _PairedLoopMixin:
    """Replaces the loops' ``run_iter`` step by :meth:`PairedEvaluation.predict`."""

    paired: PairedEvaluation

    def run(self) -> dict:
        self.paired.announce(self.evaluator)
        return super().run()

    def _paired_iter(self, idx: int, data_batch, stage: str) -> None:
        self.runner.call_hook(f'before_{stage}_iter', batch_idx=idx, data_batch=data_batch)
        with autocast(enabled=self.fp16):
            outputs = self.paired.predict(idx, data_batch)
        self.evaluator.process(data_samples=outputs, data_batch=data_batch)
        self.runner.call_hook(f'after_{stage}_iter', batch_idx=idx, data_batch=data_batch,
                              outputs=outputs)


@LOOPS.register_module()
class PairedValLoop(_PairedLoopMixin, ValLoop):
    """mmengine's ``ValLoop`` with the teacher's predictions attached to every sample.

    Args:
        runner, dataloader, evaluator, fp16: as for mmengine's ``ValLoop``.
        perturbation: optional ``dict(eps=..., num_draws=..., seed=0)``: random L-inf
            noise of radius ``eps`` (pixel units) for ``mmdist.PerturbationDisagreement``
            (PGD only in :class:`PairedTestLoop`).
    """

    def __init__(self, runner, dataloader, evaluator, fp16: bool = False,
                 perturbation: Optional[dict] = None) -> None:
        paired = PairedEvaluation(runner, 'val_cfg', 'mmdist.PairedValLoop', perturbation,
                                  allow_pgd=False)
        super().__init__(runner, dataloader, evaluator, fp16)
        self.paired = paired

    @torch.no_grad()
    def run_iter(self, idx, data_batch: Sequence[dict]) -> None:
        self._paired_iter(idx, data_batch, 'val')


@LOOPS.register_module()
class PairedTestLoop(_PairedLoopMixin, TestLoop):
    """mmengine's ``TestLoop`` with the teacher's predictions attached to every sample.

    Args:
        runner, dataloader, evaluator, fp16: as for mmengine's ``TestLoop``.
        perturbation: optional ``dict(eps=..., num_draws=..., seed=0, pgd=dict(steps=5,
            step_size=None, num_batches=1))``; see docs/faithfulness.md.
    """

    def __init__(self, runner, dataloader, evaluator, fp16: bool = False,
                 perturbation: Optional[dict] = None) -> None:
        paired = PairedEvaluation(runner, 'test_cfg', 'mmdist.PairedTestLoop', perturbation,
                                  allow_pgd=True)
        super().__init__(runner, dataloader, evaluator, fp16)
        self.paired = paired

    @torch.no_grad()
    def run_iter(self, idx, data_batch: Sequence[dict]) -> None:
        self._paired_iter(idx, data_batch, 'test')
