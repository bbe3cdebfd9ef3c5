# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Does a checkpoint fit the model it is loaded into?

mmengine loads ``load_from`` and test checkpoints with ``strict=False`` and only logs the
keys that do not match, so a checkpoint of another model used to leave the model at its
random initial weights without an error. Here:

* :func:`fit_checkpoint` compares a state dict with a model's: tensors that fit (same key,
  same shape), missing, of another shape, and keys the model does not have.
* A distiller maps a *plain student* checkpoint (keys ``backbone.*``, e.g. written by
  ``tools/model_converters/export_student.py``) onto its ``student.*`` keys and refuses a
  checkpoint that fits less than :data:`MIN_FIT` of its student
  (:func:`register_student_checkpoint_hook`).
* :func:`fit_model` compares a checkpoint with what the tools load it into (a distiller's
  student, or the whole model); :func:`modules_left_at_init` names the modules a partial
  fit leaves at their initial weights.
"""
from typing import Dict, List, Mapping, MutableMapping, NamedTuple, Tuple

from mmengine.logging import print_log
from torch import Tensor, nn

from .checkpoint import CheckpointError

STUDENT_PREFIX = 'student.'
#: Fraction of the student's tensors a checkpoint loaded into a distiller must provide.
MIN_FIT = 0.5


class CheckpointFit(NamedTuple):
    """How a checkpoint's state dict fits a model's."""
    fitting: List[str]
    missing: List[str]
    #: (key, checkpoint shape, model shape)
    mismatched: List[Tuple[str, tuple, tuple]]
    unexpected: List[str]

    @property
    def expected(self) -> int:
        return len(self.fitting) + len(self.missing) + len(self.mismatched)

    def describe(self, limit: int = 3) -> str:
        """``0 of 172 tensors fit; missing 'a', 'b', 'c' (+169 more); ...``."""

        def some(keys: List[str]) -> str:
            more = f' (+{len(keys) - limit} more)' if len(keys) > limit else ''
            return ', '.join(repr(key) for key in keys[:limit]) + more

        parts = [f'{len(self.fitting)} of {self.expected} tensors fit']
        if self.missing:
            parts.append(f'missing {some(self.missing)}')
        if self.mismatched:
            shapes = [f'{key!r} (checkpoint {list(ckpt)} vs model {list(model)})'
                      for key, ckpt, model in self.mismatched[:limit]]
            more = len(self.mismatched) - limit
            parts.append('other shape ' + ', '.join(shapes) + (f' (+{more} more)'
                                                                if more > 0 else ''))
        if self.unexpected:
            parts.append(f'not in the model {some(self.unexpected)}')
        return '; '.join(parts)


def _ignored(key: str) -> bool:
    """BatchNorm's ``num_batches_tracked`` (absent from many published checkpoints)."""
    return key.endswith('num_batches_tracked')


def fit_checkpoint(model_state: Mapping[str, Tensor],
                   state_dict: Mapping[str, Tensor]) -> CheckpointFit:
    """Compare ``state_dict`` (from a checkpoint) with ``model_state`` (the model's)."""
    fitting, missing, mismatched = [], [], []
    for key, tensor in model_state.items():
        if _ignored(key):
            continue
        if key not in state_dict:
            missing.append(key)
        elif tuple(state_dict[key].shape) != tuple(tensor.shape):
            mismatched.append((key, tuple(state_dict[key].shape), tuple(tensor.shape)))
        else:
            fitting.append(key)
    unexpected = [key for key in state_dict if key not in model_state and not _ignored(key)]
    return CheckpointFit(fitting, missing, mismatched, unexpected)


def map_plain_student(state_dict: MutableMapping[str, Tensor], prefix: str = '') -> bool:
    """In place: ``<prefix>backbone.x`` -> ``<prefix>student.backbone.x`` when no key under
    ``prefix`` starts with ``student.`` (a plain student checkpoint). True if mapped."""
    keys = [key for key in state_dict if key.startswith(prefix)]
    if not keys or any(key.startswith(prefix + STUDENT_PREFIX) for key in keys):
        return False
    for key in keys:
        state_dict[prefix + STUDENT_PREFIX + key[len(prefix):]] = state_dict.pop(key)
    return True


def student_state(distiller: nn.Module, prefix: str = '') -> Dict[str, Tensor]:
    """The distiller's student tensors under their distiller keys (``student.*``)."""
    return {f'{prefix}{STUDENT_PREFIX}{key}': value
            for key, value in distiller.student.state_dict().items()}


def fit_student(distiller: nn.Module, state_dict: MutableMapping[str, Tensor],
                prefix: str = '') -> CheckpointFit:
    """Map a plain student ``state_dict`` in place (:func:`map_plain_student`) and compare
    it with the distiller's student (keys outside ``student.*`` are left out)."""
    if map_plain_student(state_dict, prefix):
        print_log('the checkpoint holds a plain student (no `student.*` keys): its tensors '
                  'are loaded into the distiller\'s student', 'current')
    student_keys = {key: value for key, value in state_dict.items()
                    if key.startswith(prefix + STUDENT_PREFIX)}
    return fit_checkpoint(student_state(distiller, prefix), student_keys)


def is_distiller(model: nn.Module) -> bool:
    """An mmdist distiller: a ``student`` module and a (hidden) ``teacher``."""
    return hasattr(model, 'student') and hasattr(model, 'teacher')


def checkpoint_state(checkpoint: Mapping) -> Dict[str, Tensor]:
    """A checkpoint's ``state_dict`` (or the checkpoint itself when it has none), without
    the ``module.`` prefix of a DDP-wrapped model's keys."""
    state = checkpoint.get('state_dict', checkpoint)
    return {key[len('module.'):] if key.startswith('module.') else key: value
            for key, value in state.items()}


def fit_model(model: nn.Module,
              state_dict: MutableMapping[str, Tensor]) -> Tuple[CheckpointFit, str]:
    """How ``state_dict`` fits what the tools load into ``model``: of a distiller its
    student (a plain student checkpoint mapped onto ``student.*``, :func:`fit_student`),
    else the whole model. Returns the fit and the name of what was compared."""
    if is_distiller(model):
        return fit_student(model, state_dict), f'the student of {type(model).__name__}'
    return fit_checkpoint(model.state_dict(), state_dict), type(model).__name__


def modules_left_at_init(fit: CheckpointFit) -> List[str]:
    """The largest modules none of whose tensors the checkpoint provides (missing or of
    another shape), e.g. ``['student.backbone.stem', 'student.decode_head']``; a tensor
    not provided beside provided ones of its module is named itself."""
    # Every module holding (directly or in a submodule) a tensor the checkpoint provides.
    provided = set()
    for key in fit.fitting:
        parts = key.split('.')[:-1]
        provided.update('.'.join(parts[:i]) for i in range(1, len(parts) + 1))
    left = []
    for key in fit.missing + [key for key, _, _ in fit.mismatched]:
        parts = key.split('.')
        name = next(('.'.join(parts[:i]) for i in range(1, len(parts))
                     if '.'.join(parts[:i]) not in provided), key)
        if name not in left:
            left.append(name)
    return left


def _student_checkpoint_pre_hook(module: nn.Module, state_dict: MutableMapping[str, Tensor],
                                 prefix: str, *args) -> None:
    fit = fit_student(module, state_dict, prefix)
    if len(fit.fitting) < MIN_FIT * fit.expected:
        raise CheckpointError(
            f'the checkpoint loaded into {type(module).__name__} (`load_from`, `--resume` or '
            f'the test checkpoint) does not fit its student {type(module.student).__name__}: '
            f'{fit.describe()} (at least {MIN_FIT:.0%} must). Use a checkpoint of a '
            'distillation run of this config or of this student (plain or exported)')


def register_student_checkpoint_hook(distiller: nn.Module) -> None:
    """Make ``distiller.load_state_dict`` (and mmengine's loaders) accept plain student
    checkpoints and refuse checkpoints that fit less than :data:`MIN_FIT` of the student."""
    distiller.register_load_state_dict_pre_hook(_student_checkpoint_pre_hook)
