# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""What every mmdist distiller shares: a trainable student and a frozen, hidden teacher."""
import copy
import logging
from typing import Any, Dict, List, Optional, Union

import torch
from mmengine.logging import print_log
from mmengine.model import BaseModel
from torch import Tensor, nn

from mmdist.registry import MODELS
from mmdist.utils.checkpoint_fit import register_student_checkpoint_hook
from ..utils.conv_bn import fold_batch_norms
from ..utils.input_adapter import TeacherInputAdapter, img_shapes_of
from ..utils.recorder import Record, record_calls
from ..utils.teacher import ConfigSource, build_teacher, check_teacher_ckpt


def build_component(cfg: dict, key: str) -> nn.Module:
    """``MODELS.build(cfg)``; an unknown type's error names the config ``key``."""
    try:
        return MODELS.build(cfg)
    except KeyError as err:
        message = err.args[0] if err.args else str(err)
        raise KeyError(f'{key}: {message}') from err


def build_loss(cfg: dict, key: str, activation: str, reason: str) -> nn.Module:
    """Build a distillation loss and check that it uses ``activation`` (if it has one).

    Args:
        cfg: the loss config.
        key: its config key, for messages.
        activation: what the student's classifier uses (``'softmax'``/``'sigmoid'``).
        reason: where that activation comes from, for the message.
    """
    loss = build_component(cfg, key)
    used = getattr(loss, 'activation', activation)
    if used != activation:
        raise ValueError(f'{key}.activation: {reason} classifies with {activation}, '
                         f'got activation={used!r}')
    return loss


def metainfo_copies(data_samples: Optional[List]) -> Optional[List]:
    """New data samples holding only the metainfo of ``data_samples`` (for a ``predict``
    that must not write into the batch's own samples)."""
    if data_samples is None:
        return None
    return [type(sample)(metainfo=sample.metainfo) for sample in data_samples]


def _pad_divisor(preprocessor: nn.Module) -> Optional[int]:
    return getattr(preprocessor, 'pad_size_divisor', None) or getattr(
        preprocessor, 'size_divisor', None)


class BaseDistiller(BaseModel):
    """A student model (trained, saved, used for prediction) plus a frozen teacher.

    The teacher is kept out of the module tree: it is not in ``parameters()`` (so never
    handed to the optimizer or DDP), not in ``state_dict()`` (so not in checkpoints), and
    always in eval mode; device and dtype moves (``.to()``, ``.cuda()``) still apply to it.
    The distiller's data preprocessor is the student's; the teacher gets the same batch
    renormalised by :class:`TeacherInputAdapter`.

    Args:
        student: config of the student model (e.g. ``{{_base_.model}}``).
        teacher_cfg: teacher config path, ``pkg::`` path or dict.
        teacher_ckpt: teacher checkpoint path or URL (loaded onto CPU); ``'random-init'``
            (:data:`~mmdist.models.utils.teacher.RANDOM_TEACHER`) keeps random teacher
            weights on purpose; ``None`` is an error.
        teacher_cfg_options: overrides of the teacher config.
        teacher_strict: error on missing/unexpected checkpoint keys when True.
        teacher_fuse_conv_bn: fold the teacher's eval-mode BatchNorms into the
            convolutions that feed them
            (:func:`~mmdist.models.utils.conv_bn.fold_batch_norms`): the same outputs up
            to float rounding, one operation fewer per pair.
        data_preprocessor: the runner's top-level ``data_preprocessor`` (mmengine merges
            it into the model config); used as the student's when the student config has
            none, as for a plain model.
        init_cfg: mmengine init config of the distiller's own modules.
    """

    def __init__(self,
                 student: dict,
                 teacher_cfg: ConfigSource,
                 teacher_ckpt: Optional[str],
                 teacher_cfg_options: Optional[dict] = None,
                 teacher_strict: bool = True,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None,
                 teacher_fuse_conv_bn: bool = True) -> None:
        if not isinstance(teacher_fuse_conv_bn, bool):
            raise TypeError('model.teacher_fuse_conv_bn: expected True or False, got '
                            f'{teacher_fuse_conv_bn!r}')
        check_teacher_ckpt(teacher_ckpt)
        if data_preprocessor is not None and 'data_preprocessor' not in student:
            student = dict(student, data_preprocessor=data_preprocessor)
        student_model = build_component(student, 'model.student')
        super().__init__(data_preprocessor=student_model.data_preprocessor, init_cfg=init_cfg)
        self.student = student_model
        # Building the teacher must not advance the global RNG: with the same seed, the
        # student then gets exactly the initial weights it gets when trained alone
        # (init_weights runs after this constructor), so a baseline and a distilled run
        # differ only by the distillation loss.
        with torch.random.fork_rng(devices=[]):
            teacher = build_teacher(teacher_cfg, teacher_ckpt, teacher_cfg_options,
                                    teacher_strict)
        if teacher_fuse_conv_bn:
            folded = fold_batch_norms(teacher)
            print_log(f'teacher_fuse_conv_bn: folded {folded} BatchNorm layers of the teacher '
                      'into their convolutions', 'current', level=logging.INFO)
        # A plain attribute, not a registered submodule (see the class docstring).
        object.__setattr__(self, 'teacher', teacher)
        #: Set by ``mmdist.StopDistillHook``: the student trains alone (no teacher forward;
        #: the ``loss_dist_*`` terms are logged as 0).
        self.distill_stopped = False
        self._check_pair()
        self._check_padding()
        self.teacher_input_adapter = TeacherInputAdapter(student_model.data_preprocessor,
                                                         teacher.data_preprocessor)
        # Plain student checkpoints load into `student.`; one that fits too little is an error.
        register_student_checkpoint_hook(self)

    def _check_pair(self) -> None:
        """Task-specific checks of the student/teacher pair (e.g. supported heads); they
        run before the generic ones, so an unsupported model is the error reported."""

    def _check_padding(self) -> None:
        student_div = _pad_divisor(self.student.data_preprocessor)
        teacher_div = _pad_divisor(self.teacher.data_preprocessor)
        if teacher_div and student_div and student_div % teacher_div:
            raise ValueError(
                'teacher_cfg: the teacher pads batches to multiples of '
                f'{teacher_div} but the student (model.student.data_preprocessor) to '
                f'multiples of {student_div}; both networks see the student\'s padded batch, '
                'so the student divisor must be a multiple of the teacher\'s')

    @staticmethod
    def _check_equal(what: str, student_value, teacher_value, key: str) -> None:
        """Build-time check naming the config key and both values."""
        if student_value != teacher_value:
            raise ValueError(f'{key}: student and teacher differ in {what}: '
                             f'student {student_value!r} vs teacher {teacher_value!r}')

    # ----------------------------------------------------------------- teacher handling
    def train(self, mode: bool = True) -> 'BaseDistiller':
        """Set the student's mode; the teacher stays in eval mode."""
        super().train(mode)
        self.teacher.train(False)
        return self

    def _apply(self, fn, *args, **kwargs):
        """Apply device/dtype moves to the hidden teacher as well."""
        super()._apply(fn, *args, **kwargs)
        self.teacher._apply(fn, *args, **kwargs)
        return self

    def __deepcopy__(self, memo: dict) -> 'BaseDistiller':
        """A copy that shares the frozen teacher (e.g. mmengine's ``EMAHook`` copies the
        model to average its weights; the teacher never changes, so it is not copied)."""
        memo[id(self.teacher)] = self.teacher
        copied = type(self).__new__(type(self))
        memo[id(self)] = copied
        for name, value in self.__dict__.items():
            object.__setattr__(copied, name, copy.deepcopy(value, memo))
        return copied

    def teacher_inputs(self, inputs: Tensor, data_samples: Optional[List]) -> Tensor:
        """The student's batch in the teacher's normalisation (same padding)."""
        return self.teacher_input_adapter(inputs, img_shapes_of(data_samples))

    def predict_teacher(self, inputs: Tensor, data_samples: Optional[List] = None) -> List:
        """The teacher's own predictions on the student's preprocessed batch.

        Runs the teacher's ``predict`` (its own ``test_cfg``, post-processing and rescaling
        to the original image) under ``no_grad`` on :meth:`teacher_inputs`. The teacher
        writes into new data samples that carry only the metainfo of ``data_samples``, so
        the caller's samples (and the student's predictions in them) are left unchanged.

        Args:
            inputs: (N, C, H, W) batch from the student's data preprocessor.
            data_samples: the batch's data samples (their metainfo is used).

        Returns:
            One data sample per image with the teacher's prediction fields
            (e.g. ``pred_instances``; ``seg_logits`` and ``pred_sem_seg``).
        """
        with torch.no_grad():
            return self.teacher.predict(self.teacher_inputs(inputs, data_samples),
                                        metainfo_copies(data_samples))

    # ----------------------------------------------------------------- forward modes
    def forward(self,
                inputs: Tensor,
                data_samples: Optional[List] = None,
                mode: str = 'tensor') -> Union[Dict[str, Tensor], List, Tensor]:
        """``'loss'``: student losses + distillation losses; ``'predict'`` and
        ``'tensor'``: the student alone, exactly as the plain mmdet/mmseg model."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode in ('predict', 'tensor'):
            return self.student(inputs, data_samples, mode)
        raise RuntimeError(f'Invalid mode "{mode}". Only supports loss, predict and tensor mode')

    def loss(self, inputs: Tensor, data_samples: List) -> Dict[str, Tensor]:
        """Student losses (its own ``loss()``, unchanged) plus ``loss_dist_*``.

        The teacher runs first, under ``no_grad`` on the student's batch in its own
        normalisation (:meth:`teacher_forward`), and keeps only what distillation reads:
        its activations are freed before the student's forward starts, so the student's
        step runs as it does alone. The student's ``loss()`` then runs with the modules
        of :meth:`student_records` recorded, and :meth:`distill_losses` compares. Once
        ``distill_stopped`` is set (``mmdist.StopDistillHook``), the student's losses
        alone, and each ``loss_dist_*`` key as 0.

        Args:
            inputs: (N, 3, H, W) batch from the student's data preprocessor.
            data_samples: the batch's data samples.
        """
        if self.distill_stopped:
            losses = self.student.loss(inputs, data_samples)
            losses.update(dict.fromkeys(self.distill_loss_names(), self._stopped_loss()))
            return losses
        with torch.no_grad():
            teacher_outputs = self.teacher_forward(self.teacher_inputs(inputs, data_samples),
                                                   data_samples)
        with record_calls(self.student_records()) as records:
            losses = self.student.loss(inputs, data_samples)
        losses.update(self.distill_losses(records, teacher_outputs, data_samples))
        return losses

    def _stopped_loss(self) -> Tensor:
        """0, with a (zero) gradient for every trainable parameter outside the student
        (connectors, adapters), so that DDP sees all parameters used."""
        own = [p for name, p in self.named_parameters()
               if p.requires_grad and not name.startswith('student.')]
        if not own:
            return torch.zeros((), device=next(self.student.parameters()).device)
        return sum(p.sum() for p in own) * 0.0

    # ----------------------------------------------------------------- per task
    def teacher_forward(self, inputs: Tensor, data_samples: List) -> Any:
        """What distillation reads of the teacher on ``inputs`` (its normalisation) and
        the batch's ``data_samples``."""
        raise NotImplementedError

    def student_records(self) -> Dict[str, nn.Module]:
        """name -> student module whose first call's inputs and output to record."""
        raise NotImplementedError

    def distill_losses(self, records: Dict[str, Record], teacher_outputs: Any,
                       data_samples: List) -> Dict[str, Tensor]:
        """The ``loss_dist_*`` terms from the student's records and the teacher's outputs."""
        raise NotImplementedError

    def distill_loss_names(self) -> List[str]:
        """The keys :meth:`distill_losses` returns (logged as 0 once distillation stops)."""
        raise NotImplementedError
