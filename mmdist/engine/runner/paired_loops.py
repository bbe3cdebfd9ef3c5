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
import torch.nn.functional as F
from mmengine.dist import get_dist_info
from mmengine.model import is_model_wrapper
from mmengine.runner import TestLoop, ValLoop
from mmengine.runner.amp import autocast
from mmengine.runner.loops import _update_losses
from torch import Tensor

from mmdist.registry import LOOPS

#: Prediction fields perturbed predictions are recorded for (segmentation, detection).
PRED_FIELDS = ('pred_sem_seg', 'pred_instances')


def _metainfo_copies(data_samples: Optional[List]) -> Optional[List]:
    """New data samples with only the metainfo (models' ``predict`` writes into them)."""
    if data_samples is None:
        return None
    return [type(sample)(metainfo=sample.metainfo) for sample in data_samples]


def _plain(cfg):
    to_dict = getattr(cfg, 'to_dict', None)
    return to_dict() if callable(to_dict) else copy.deepcopy(cfg)


class PairedEvaluation:
    """The work shared by :class:`PairedValLoop` and :class:`PairedTestLoop`.

    Args:
        runner: the runner (its model must be an mmdist distiller).
        cfg_key: ``'val_cfg'`` or ``'test_cfg'`` (named in errors).
        loop_type: the loop's registered name (named in errors).
        perturbation: ``None`` or ``dict(eps, num_draws=1, seed=0, pgd=None)`` with
            ``pgd=dict(steps=5, step_size=None, num_batches=1)``.
        allow_pgd: whether this loop may run the PGD attack.
    """

    def __init__(self, runner, cfg_key: str, loop_type: str,
                 perturbation: Optional[dict], allow_pgd: bool) -> None:
        from mmdist.models.distillers import BaseDistiller  # models import heavy libraries
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
        self.perturbation = self._parse_perturbation(perturbation, allow_pgd, loop_type)

    # ----------------------------------------------------------------- configuration
    def _parse_perturbation(self, cfg: Optional[dict], allow_pgd: bool,
                            loop_type: str) -> Optional[dict]:
        if cfg is None:
            return None
        key = f'{self.cfg_key}.perturbation'
        cfg = dict(cfg)
        unknown = set(cfg) - {'eps', 'num_draws', 'seed', 'pgd'}
        if unknown:
            raise ValueError(f'{key}: unknown keys {sorted(unknown)}; expected eps, '
                             'num_draws, seed, pgd')
        if 'eps' not in cfg or not float(cfg['eps']) > 0:
            raise ValueError(f'{key}.eps: the L-inf radius in pixel units (0-255 scale) '
                             f'must be > 0, got {cfg.get("eps")!r}')
        parsed = dict(eps=float(cfg['eps']), num_draws=int(cfg.get('num_draws', 1)),
                      seed=int(cfg.get('seed', 0)), pgd=None)
        if parsed['num_draws'] < 0:
            raise ValueError(f'{key}.num_draws must be >= 0, got {parsed["num_draws"]}')
        pgd = cfg.get('pgd')
        if pgd is not None:
            if not allow_pgd:
                raise ValueError(f"{key}.pgd: the PGD attack runs in the test loop only "
                                 f"(test_cfg.type='mmdist.PairedTestLoop'), not in "
                                 f"'{loop_type}'")
            pgd = dict(pgd)
            unknown = set(pgd) - {'steps', 'step_size', 'num_batches'}
            if unknown:
                raise ValueError(f'{key}.pgd: unknown keys {sorted(unknown)}; expected '
                                 'steps, step_size, num_batches')
            steps = int(pgd.get('steps', 5))
            if steps < 1:
                raise ValueError(f'{key}.pgd.steps must be >= 1, got {steps}')
            step_size = pgd.get('step_size')
            parsed['pgd'] = dict(
                steps=steps,
                step_size=float(step_size) if step_size is not None else
                2.5 * parsed['eps'] / steps,
                num_batches=int(pgd.get('num_batches', 1)))
            self._pgd_kind(f'{key}.pgd')  # fail at build time for unsupported models
        return parsed

    def _pgd_kind(self, key: str) -> str:
        student, teacher = self.model.student, self.model.teacher
        if hasattr(student, 'decode_head') and hasattr(teacher, 'decode_head'):
            return 'seg'
        if (hasattr(student, 'bbox_head') and hasattr(teacher, 'bbox_head')
                and not hasattr(student, 'roi_head') and not hasattr(teacher, 'roi_head')):
            return 'dense'
        raise ValueError(f'{key}: the PGD attack needs segmentors (decode_head) or dense '
                         f'one-stage detectors (bbox_head) on both sides, got '
                         f'{type(student).__name__} and {type(teacher).__name__}; random '
                         'noise (num_draws) works for every model')

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

    # ----------------------------------------------------------------- one batch
    def predict(self, idx: int, data_batch) -> List:
        """Student predictions with the teacher's (and perturbed ones) attached."""
        model = self.model
        data = model.data_preprocessor(data_batch, False)
        inputs, samples = data['inputs'], data.get('data_samples')
        # The student predicts into the batch's samples, exactly as in the stock loops
        # (so they keep the ground truth every metric reads); the teacher and the
        # perturbed passes get copies holding only the metainfo.
        outputs = model._run_forward(data, mode='predict')
        self._attach(outputs, model.predict_teacher(inputs, samples), 'teacher_')
        if self.perturbation is not None:
            self._perturb(idx, inputs, samples, outputs)
        return outputs

    @staticmethod
    def _attach(outputs: Sequence, others: Sequence, prefix: str) -> None:
        for output, other in zip(outputs, others):
            for key in other.keys():  # data fields: the teacher's predictions
                output.set_field(other.get(key), prefix + key)

    # ----------------------------------------------------------------- perturbations
    def _perturb(self, idx: int, inputs: Tensor, samples: Optional[List],
                 outputs: List) -> None:
        cfg = self.perturbation
        names = [name for name in PRED_FIELDS if name in outputs[0]]
        if not names:
            raise ValueError(f'{self.cfg_key}.perturbation: predictions have none of '
                             f'{PRED_FIELDS}; only segmentors and detectors are supported')
        name = names[0]
        rank, world_size = get_dist_info()
        generator = torch.Generator().manual_seed(cfg['seed'] + idx * world_size + rank)
        space = _PixelSpace(self.model.data_preprocessor, inputs, samples)
        student_draws: List[List] = [[] for _ in outputs]
        teacher_draws: List[List] = [[] for _ in outputs]
        for _ in range(cfg['num_draws']):
            noise = (torch.rand(inputs.shape, generator=generator) * 2 - 1) * cfg['eps']
            perturbed = space.apply(noise.to(inputs))
            student, teacher = self._predict_pair(perturbed, samples)
            for i in range(len(outputs)):
                student_draws[i].append(student[i].get(name))
                teacher_draws[i].append(teacher[i].get(name))
        for output, s_list, t_list in zip(outputs, student_draws, teacher_draws):
            if cfg['num_draws']:
                output.set_field(s_list, f'perturb_{name}')
                output.set_field(t_list, f'perturb_teacher_{name}')
        pgd = cfg['pgd']
        if pgd is not None and idx < pgd['num_batches']:
            noise = (torch.rand(inputs.shape, generator=generator) * 2 - 1) * cfg['eps']
            with torch.enable_grad():
                delta = self._pgd(space, noise.to(inputs), samples, pgd)
            student, teacher = self._predict_pair(space.apply(delta), samples)
            for output, s_out, t_out in zip(outputs, student, teacher):
                output.set_field(s_out.get(name), f'pgd_{name}')
                output.set_field(t_out.get(name), f'pgd_teacher_{name}')

    def _predict_pair(self, inputs: Tensor, samples: Optional[List]):
        student = self.model._run_forward(
            dict(inputs=inputs, data_samples=_metainfo_copies(samples)), mode='predict')
        return student, self.model.predict_teacher(inputs, samples)

    def _pgd(self, space: '_PixelSpace', delta: Tensor, samples: Optional[List],
             cfg: dict) -> Tensor:
        """L-inf PGD (pixel units) ascending the teacher-student KL divergence."""
        eps, kind = self.perturbation['eps'], self._pgd_kind(f'{self.cfg_key}.perturbation.pgd')
        for _ in range(cfg['steps']):
            delta = delta.detach().requires_grad_(True)
            loss = self._discrepancy(space.apply(delta), samples, kind)
            (grad, ) = torch.autograd.grad(loss, [delta])
            delta = (delta.detach() + cfg['step_size'] * grad.sign()).clamp(-eps, eps)
        return delta.detach()

    def _discrepancy(self, inputs: Tensor, samples: Optional[List], kind: str) -> Tensor:
        from mmdist.models.utils import dense_to_rows
        model = self.model
        student = model.student(inputs, None, mode='tensor')
        teacher = model.teacher(model.teacher_inputs(inputs, samples), None, mode='tensor')
        if kind == 'seg':
            if teacher.shape[-2:] != student.shape[-2:]:
                teacher = F.interpolate(teacher, size=student.shape[-2:], mode='bilinear',
                                        align_corners=model.student.decode_head.align_corners)
            return _softmax_kl(dense_to_rows(teacher), dense_to_rows(student))
        head = model.student.bbox_head
        total = inputs.new_zeros(())
        for level, (s_map, t_map) in enumerate(zip(student[0], teacher[0])):
            anchors = head.prior_generator.num_base_priors[level]
            s_rows, t_rows = dense_to_rows(s_map, anchors), dense_to_rows(t_map, anchors)
            if head.use_sigmoid_cls:
                p_t = t_rows.sigmoid()
                total = total + (F.binary_cross_entropy_with_logits(s_rows, p_t) -
                                 F.binary_cross_entropy_with_logits(t_rows, p_t))
            else:
                total = total + _softmax_kl(t_rows, s_rows)
        return total


def _softmax_kl(teacher_rows: Tensor, student_rows: Tensor) -> Tensor:
    """Mean over rows of KL(softmax(teacher) || softmax(student))."""
    return F.kl_div(F.log_softmax(student_rows.float(), 1), F.log_softmax(
        teacher_rows.float(), 1), log_target=True, reduction='batchmean')


class _PixelSpace:
    """Perturb a normalised batch in raw pixel units, inside each image's content.

    ``raw = x * std + mean`` (per channel, the student's preprocessor); the perturbed raw
    image is clipped to [0, 255] and the batch padding is left unchanged.
    """

    def __init__(self, preprocessor, inputs: Tensor, samples: Optional[List]) -> None:
        from mmdist.models.utils.input_adapter import _normalization, img_shapes_of
        mean, std, _ = _normalization(preprocessor, inputs.shape[1])
        self.inputs = inputs
        self.mean = mean.to(inputs).view(1, -1, 1, 1)
        self.std = std.to(inputs).view(1, -1, 1, 1)
        self.raw = inputs * self.std + self.mean
        mask = torch.ones_like(inputs[:, :1], dtype=torch.bool)
        for i, shape in enumerate(img_shapes_of(samples) or []):
            mask[i, :, shape[0]:, :] = False
            mask[i, :, :, shape[1]:] = False
        self.mask = mask

    def apply(self, delta: Tensor) -> Tensor:
        """The batch with ``delta`` (pixel units) added to the raw image content."""
        perturbed = ((self.raw + delta).clamp(0, 255) - self.mean) / self.std
        return torch.where(self.mask, perturbed, self.inputs)


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
        # The predictions carry no loss entry; kept for parity with mmengine's loops.
        outputs, _ = _update_losses(outputs, self.val_loss if stage == 'val' else
                                    self.test_loss)
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
