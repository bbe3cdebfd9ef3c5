# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""mmengine's CheckpointHook that never writes non-finite weights or half-written files."""
import os.path as osp
from collections import defaultdict
from typing import List, Optional, Tuple

import torch
from mmengine.dist import all_gather_object, all_reduce, get_world_size, is_main_process
from mmengine.hooks import CheckpointHook
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapperDict
from torch import Tensor

from mmdist.registry import HOOKS
from mmdist.utils.atomic_file import ATOMIC_LOCAL_BACKEND, atomic_write


class NonFiniteStateError(FloatingPointError):
    """A parameter, buffer or optimizer state tensor about to be checkpointed is NaN/inf."""


def named_state_tensors(model: torch.nn.Module, optim_wrapper) -> List[Tuple[str, Tensor]]:
    """The floating-point tensors a checkpoint of ``model`` and ``optim_wrapper`` holds.

    Returns:
        ``(description, tensor)`` pairs: the model's ``state_dict`` (parameters and
        buffers), then each optimizer state tensor (e.g. momentum, ``exp_avg``) named by
        the parameter it belongs to.
    """
    model = model.module if is_model_wrapper(model) else model
    named = [(f'model tensor {name!r}', tensor) for name, tensor in model.state_dict().items()
             if tensor.is_floating_point()]
    param_names = {id(param): name for name, param in model.named_parameters()}
    wrappers = (optim_wrapper.optim_wrappers.values()
                if isinstance(optim_wrapper, OptimWrapperDict) else [optim_wrapper])
    for wrapper in wrappers:
        for param, state in wrapper.optimizer.state.items():
            owner = param_names.get(id(param), 'an unnamed parameter')
            named += [(f'optimizer state {key!r} of {owner!r}', value)
                      for key, value in state.items()
                      if torch.is_tensor(value) and value.is_floating_point()]
    return named


def describe_non_finite(named: List[Tuple[str, Tensor]]) -> Optional[str]:
    """Name the first tensor of ``named`` holding NaN or inf (``None`` if all are finite).

    Each tensor is reduced to its (min, max) in one pass without a temporary copy (NaN
    propagates through both, +-inf shows in one); the pairs are stacked per device, so
    there is one device-to-host copy per device.
    """
    named = [(name, tensor) for name, tensor in named if tensor.numel()]
    by_device = defaultdict(list)
    for index, (_, tensor) in enumerate(named):
        by_device[tensor.device].append(index)
    finite = torch.ones(len(named), dtype=torch.bool)
    for indices in by_device.values():
        extremes = torch.stack([torch.stack(torch.aminmax(named[i][1])) for i in indices])
        finite[indices] = torch.isfinite(extremes).all(dim=1).cpu()
    bad = (~finite).nonzero().flatten().tolist()
    if not bad:
        return None
    name, tensor = named[bad[0]]
    kind = 'nan' if torch.isnan(tensor).any() else 'inf'
    return f'{name} holds {kind} ({len(bad)} of {len(named)} tensors non-finite)'


def verify_finite_state(runner, iteration: int, target: str) -> None:
    """Raise :class:`NonFiniteStateError` on every rank if any rank's weights are not finite.

    Call on all ranks right before a checkpoint is saved: each rank checks its own model
    and optimizer state, and one all-reduce makes the verdict common to all ranks, so no
    rank saves while another stops.

    Args:
        runner: the training runner.
        iteration: the iteration the checkpoint belongs to (named in the error).
        target: what would have been written, e.g. ``'iter_8.pth'`` (named in the error).
    """
    problem = describe_non_finite(named_state_tensors(runner.model, runner.optim_wrapper))
    flag = torch.tensor([0.0 if problem is None else 1.0])
    all_reduce(flag, op='max')  # a no-op in single-process runs
    if not flag.item():
        return
    problems = all_gather_object(problem)
    if get_world_size() > 1:
        described = '; '.join(f'rank {rank}: {text}' for rank, text in enumerate(problems)
                              if text is not None)
    else:
        described = problems[0]
    last = runner.message_hub.get_info('last_ckpt')  # restored on resume
    previous = f'the last checkpoint is {last}' if last else 'no checkpoint written yet'
    raise NonFiniteStateError(
        f'iteration {iteration}: {described}; {target} was not written and training stopped '
        f'({previous}; see docs/run_lifecycle.md, "Non-finite losses and weights")')


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` (same arguments) with three guarantees added.

    * No checkpoint with a NaN or infinite parameter, buffer or optimizer state is
      written: right before each save all ranks check their state and agree on the
      verdict (:func:`verify_finite_state`); a failure raises
      :class:`NonFiniteStateError` on every rank, naming the iteration and the first
      non-finite tensor.
    * Checkpoints and ``last_checkpoint`` in a local folder are written to a temporary
      file and renamed (mmengine file backend ``'mmdist_atomic_local'``), so a failed
      write (disk full) leaves no truncated ``iter_N.pth`` and ``last_checkpoint``
      always names a complete file. Remote ``out_dir`` / ``backend_args`` are used as
      given.
    * With ``max_keep_ckpts`` the outdated checkpoint is removed only after the new one
      is written (mmengine removes it first, so a failed write left neither).

    ``tools/train.py`` uses it in place of ``CheckpointHook`` (docs/run_lifecycle.md).
    """

    def before_train(self, runner) -> None:
        out_dir = self.out_dir if self.out_dir is not None else runner.work_dir
        if self.backend_args is None and self.file_client_args is None and \
                '://' not in str(out_dir):
            self.backend_args = dict(backend=ATOMIC_LOCAL_BACKEND)
        super().before_train(runner)

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        filename = self.filename_tmpl.format(step)
        verify_finite_state(runner, meta['iter'], filename)
        outdated = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))

        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        atomic_write(osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt.encode())
        if outdated is not None:
            path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(outdated))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):  # checkpoints saved by deepspeed
                self.file_backend.rmtree(path)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        if self.save_best:
            verify_finite_state(runner, runner.iter, 'the best checkpoint')
        super()._save_best_checkpoint(runner, metrics)
