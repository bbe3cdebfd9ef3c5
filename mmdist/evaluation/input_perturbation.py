# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Input perturbations of the paired evaluation: random L-inf noise and a PGD attack on the
teacher-student divergence, in raw pixel units, for ``mmdist.PerturbationDisagreement``.

``perturbation=dict(eps, num_draws=1, seed=0, pgd=None)`` with
``pgd=dict(steps=5, step_size=None, num_batches=1)`` (see docs/faithfulness.md).
"""
from typing import List, Optional

import torch
import torch.nn.functional as F
from mmengine.dist import get_dist_info
from torch import Tensor, nn

from mmdist.models.distillers.base_distiller import metainfo_copies
from mmdist.models.utils import dense_to_rows
from mmdist.models.utils.input_adapter import img_shapes_of, normalization_of

#: Prediction fields perturbed predictions are recorded for (segmentation, detection).
PRED_FIELDS = ('pred_sem_seg', 'pred_instances')


def parse_perturbation(cfg: Optional[dict], key: str, allow_pgd: bool,
                       loop_type: str) -> Optional[dict]:
    """Check a loop's ``perturbation`` config (named ``key`` in errors) and fill defaults."""
    if cfg is None:
        return None
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
    return parsed


def pgd_kind(model: nn.Module, key: str) -> str:
    """``'seg'`` or ``'dense'``: the distiller's networks the PGD attack supports."""
    student, teacher = model.student, model.teacher
    if hasattr(student, 'decode_head') and hasattr(teacher, 'decode_head'):
        return 'seg'
    if (hasattr(student, 'bbox_head') and hasattr(teacher, 'bbox_head')
            and not hasattr(student, 'roi_head') and not hasattr(teacher, 'roi_head')):
        return 'dense'
    raise ValueError(f'{key}: the PGD attack needs segmentors (decode_head) or dense '
                     f'one-stage detectors (bbox_head) on both sides, got '
                     f'{type(student).__name__} and {type(teacher).__name__}; random '
                     'noise (num_draws) works for every model')


class PixelSpace:
    """Perturb a normalised batch in raw pixel units, inside each image's content.

    ``raw = x * std + mean`` (per channel, the student's preprocessor); the perturbed raw
    image is clipped to [0, 255] and the batch padding is left unchanged.
    """

    def __init__(self, preprocessor: nn.Module, inputs: Tensor,
                 samples: Optional[List]) -> None:
        mean, std, _ = normalization_of(preprocessor, inputs.shape[1])
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
        """The (N, C, H, W) batch with ``delta`` (pixel units) added to the image content."""
        perturbed = ((self.raw + delta).clamp(0, 255) - self.mean) / self.std
        return torch.where(self.mask, perturbed, self.inputs)


def predict_pair(model: nn.Module, inputs: Tensor, samples: Optional[List]):
    """Student and teacher predictions on the same preprocessed ``inputs``."""
    return (model(inputs, metainfo_copies(samples), mode='predict'),
            model.predict_teacher(inputs, samples))


def attach_perturbed(model: nn.Module, cfg: dict, idx: int, inputs: Tensor,
                     samples: Optional[List], outputs: List, key: str) -> None:
    """Attach ``perturb_<field>`` / ``perturb_teacher_<field>`` (one per noise draw) and,
    on the first ``pgd.num_batches`` batches, ``pgd_<field>`` / ``pgd_teacher_<field>`` to
    the student's ``outputs`` of batch ``idx``."""
    names = [name for name in PRED_FIELDS if name in outputs[0]]
    if not names:
        raise ValueError(f'{key}: predictions have none of {PRED_FIELDS}; only segmentors '
                         'and detectors are supported')
    name = names[0]
    rank, world_size = get_dist_info()
    generator = torch.Generator().manual_seed(cfg['seed'] + idx * world_size + rank)
    space = PixelSpace(model.data_preprocessor, inputs, samples)
    draws = [[] for _ in outputs], [[] for _ in outputs]
    for _ in range(cfg['num_draws']):
        noise = (torch.rand(inputs.shape, generator=generator) * 2 - 1) * cfg['eps']
        for pair_draws, predictions in zip(draws, predict_pair(
                model, space.apply(noise.to(inputs)), samples)):
            for i, prediction in enumerate(predictions):
                pair_draws[i].append(prediction.get(name))
    if cfg['num_draws']:
        for output, student, teacher in zip(outputs, *draws):
            output.set_field(student, f'perturb_{name}')
            output.set_field(teacher, f'perturb_teacher_{name}')
    pgd = cfg['pgd']
    if pgd is not None and idx < pgd['num_batches']:
        noise = (torch.rand(inputs.shape, generator=generator) * 2 - 1) * cfg['eps']
        with torch.enable_grad():
            delta = pgd_attack(model, space, noise.to(inputs), samples, cfg['eps'], pgd,
                               pgd_kind(model, f'{key}.pgd'))
        student, teacher = predict_pair(model, space.apply(delta), samples)
        for output, s_out, t_out in zip(outputs, student, teacher):
            output.set_field(s_out.get(name), f'pgd_{name}')
            output.set_field(t_out.get(name), f'pgd_teacher_{name}')


def pgd_attack(model: nn.Module, space: PixelSpace, delta: Tensor, samples: Optional[List],
               eps: float, cfg: dict, kind: str) -> Tensor:
    """L-inf PGD (pixel units) from ``delta``, ascending :func:`discrepancy`."""
    for _ in range(cfg['steps']):
        delta = delta.detach().requires_grad_(True)
        loss = discrepancy(model, space.apply(delta), samples, kind)
        (grad, ) = torch.autograd.grad(loss, [delta])
        delta = (delta.detach() + cfg['step_size'] * grad.sign()).clamp(-eps, eps)
    return delta.detach()


def discrepancy(model: nn.Module, inputs: Tensor, samples: Optional[List], kind: str) -> Tensor:
    """Teacher-student KL divergence of the class predictions (mean over pixels, or summed
    over FPN levels of the mean over priors; Bernoulli KL for sigmoid heads)."""
    student = model.student(inputs, None, mode='tensor')
    teacher = model.teacher(model.teacher_inputs(inputs, samples), None, mode='tensor')
    if kind == 'seg':
        if teacher.shape[-2:] != student.shape[-2:]:
            teacher = F.interpolate(teacher, size=student.shape[-2:], mode='bilinear',
                                    align_corners=model.student.decode_head.align_corners)
        return softmax_kl(dense_to_rows(teacher), dense_to_rows(student))
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
            total = total + softmax_kl(t_rows, s_rows)
    return total


def softmax_kl(teacher_rows: Tensor, student_rows: Tensor) -> Tensor:
    """Mean over rows of KL(softmax(teacher) || softmax(student))."""
    return F.kl_div(F.log_softmax(student_rows.float(), 1), F.log_softmax(
        teacher_rows.float(), 1), log_target=True, reduction='batchmean')
