# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""What tools/train.py and tools/test.py share: config loading, checks made before a run
starts, the hooks mmdist adds to training, CPU multi-process setup and the collective
timeout."""
import contextlib
import gc
import logging
import numbers
import os.path as osp
import weakref
from datetime import timedelta
from typing import Iterator, NamedTuple, Optional

import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.runner import find_latest_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader

from .checkpoint import validate_checkpoint

#: Hooks every training run through mmdist's tools gets (see docs/run_lifecycle.md).
TRAINING_HOOKS = ('mmdist.RNGStateHook', 'mmdist.FiniteLossHook')
#: What tools/train.py uses in place of mmengine's ``CheckpointHook``.
CHECKPOINT_HOOK = 'mmdist.SafeCheckpointHook'

#: The config key of the collective timeout (seconds), mmengine's own.
TIMEOUT_KEY = 'env_cfg.dist_cfg.timeout'
#: Its default in mmdist's tools: a rank that hangs (or is stopped) fails the run after
#: this long instead of torch's 30 minutes (gloo); long enough for rank 0 alone to save a
#: checkpoint or compute COCO metrics while the others wait.
DEFAULT_COLLECTIVE_TIMEOUT = 600


class CollectiveTimeoutError(RuntimeError):
    """A collective operation waited longer than ``env_cfg.dist_cfg.timeout``."""


def load_run_config(config: str, work_dir: Optional[str], launcher: str,
                    cfg_options: Optional[dict]) -> Config:
    """Load ``config``, apply ``--cfg-options`` and pick the work dir as OpenMMLab tools do."""
    if not osp.isfile(config):
        raise FileNotFoundError(f'config file {config!r} does not exist')
    cfg = Config.fromfile(config)
    cfg.launcher = launcher
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])
    set_collective_timeout(cfg)
    return cfg


def set_collective_timeout(cfg: Config) -> float:
    """Check ``env_cfg.dist_cfg.timeout`` and give it mmdist's default when unset.

    mmengine passes ``env_cfg.dist_cfg`` to ``init_process_group`` (GPU launchers);
    :func:`setup_cpu_distributed` does the same on CPU.

    Returns:
        The timeout in seconds.
    """
    env_cfg = cfg.get('env_cfg', None) or {}
    dist_cfg = env_cfg.get('dist_cfg', None) or {}
    timeout = dist_cfg.get('timeout', None)
    if timeout is None:
        timeout = DEFAULT_COLLECTIVE_TIMEOUT
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or timeout <= 0:
        raise ValueError(f'{TIMEOUT_KEY} must be a positive number of seconds, got {timeout!r}')
    dist_cfg['timeout'] = timeout
    env_cfg['dist_cfg'] = dist_cfg
    cfg.env_cfg = env_cfg
    return timeout


def is_collective_timeout(err: BaseException) -> bool:
    """Whether ``err`` is torch.distributed reporting a collective that timed out."""
    return isinstance(err, RuntimeError) and 'timed out' in str(err).lower()


@contextlib.contextmanager
def explain_collective_timeout(timeout: Optional[float] = None) -> Iterator[None]:
    """Re-raise a collective timeout as :class:`CollectiveTimeoutError` naming the setting."""
    try:
        yield
    except RuntimeError as err:
        if not is_collective_timeout(err):
            raise
        after = f' ({timeout:g} s)' if timeout is not None else ''
        raise CollectiveTimeoutError(
            f'a collective operation waited longer than {TIMEOUT_KEY}{after} for another rank '
            '(hung, stopped, crashed or far slower than the others): the run is stopped. '
            f'If the ranks were only slow, raise it, e.g. --cfg-options {TIMEOUT_KEY}=1800 '
            f'(see docs/run_lifecycle.md). torch.distributed said: {err}') from err


def setup_cpu_distributed(cfg: Config) -> None:
    """Run ``--launcher pytorch`` on machines without CUDA, over the gloo backend.

    mmengine's pytorch launcher calls ``torch.cuda.set_device`` and wraps the model with
    ``device_ids=[LOCAL_RANK]``; neither works without a GPU. Here the process group is
    initialised with gloo from torchrun's environment (mmengine then leaves it alone) and
    DDP gets ``device_ids=None``. Nothing changes on GPU machines.
    """
    if cfg.get('launcher', 'none') != 'pytorch' or torch.cuda.is_available():
        return
    if not torch_dist.is_initialized():
        timeout = set_collective_timeout(cfg)
        torch_dist.init_process_group(backend='gloo', timeout=timedelta(seconds=timeout))
    wrapper = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel')
    wrapper.setdefault('device_ids', None)
    cfg.model_wrapper_cfg = wrapper
    print_log(f'no CUDA device: distributed run over gloo on CPU (rank '
              f'{torch_dist.get_rank()} of {torch_dist.get_world_size()})', 'current')


def shutdown_distributed(wait_for_ranks: bool = False) -> None:
    """Destroy the default process group, if any, and free it before the interpreter exits.

    gloo's worker threads can still hold the tensors of the last collectives when the main
    thread finishes; if they let go of them while the interpreter is shutting down, torch
    takes the GIL from that thread and the process aborts ("terminate called without an
    active exception", pytorch/pytorch#190489) after a successful run. Destroying the
    group does not stop those threads; freeing the group object does (its destructor joins
    them), so the group is collected here while the interpreter is still whole. That needs
    every reference to it gone: the runner (its DDP wrapper) must be unreachable by now, and
    ``torch.distributed.nn`` must have been imported before the group was created (it binds
    the group as a default argument; mmengine imports it early).

    With ``wait_for_ranks`` (after a successful run) all ranks first meet at a barrier, so
    that no rank tears its group down while a peer still communicates with it, and a group
    that is still referenced afterwards is reported; after a failure there is no barrier
    (the other ranks may never arrive). A no-op for single-process runs.
    """
    if not (torch_dist.is_available() and torch_dist.is_initialized()):
        return
    if wait_for_ranks:
        torch_dist.barrier()
    group = weakref.ref(torch_dist.group.WORLD)
    torch_dist.destroy_process_group()
    gc.collect()
    if wait_for_ranks and group() is not None:
        print_log('the destroyed process group is still referenced, so its worker threads '
                  'live on until the interpreter exits (where gloo can abort the process)',
                  'current', logging.WARNING)


def add_training_hooks(cfg: Config) -> None:
    """Append :data:`TRAINING_HOOKS` to ``cfg.custom_hooks`` unless already there, and
    make ``default_hooks.checkpoint`` of type ``CheckpointHook`` a :data:`CHECKPOINT_HOOK`
    (same arguments)."""
    hooks = list(cfg.get('custom_hooks', None) or [])
    present = {hook.get('type') for hook in hooks}
    for hook_type in TRAINING_HOOKS:
        if hook_type not in present and hook_type.split('.')[-1] not in present:
            hooks.append(dict(type=hook_type))
    cfg.custom_hooks = hooks
    checkpoint = (cfg.get('default_hooks', None) or {}).get('checkpoint', None)
    if checkpoint is None:
        return
    if checkpoint.get('type') == 'CheckpointHook':
        checkpoint['type'] = CHECKPOINT_HOOK
    elif checkpoint.get('type') not in (CHECKPOINT_HOOK, CHECKPOINT_HOOK.split('.')[-1]):
        print_log(f'default_hooks.checkpoint.type={checkpoint.get("type")!r}: checkpoints are '
                  f'not checked for non-finite weights nor written atomically (only '
                  f'CheckpointHook is replaced by {CHECKPOINT_HOOK})', 'current',
                  level=logging.WARNING)


class RunCheckpoint(NamedTuple):
    """The checkpoint a training run starts from."""
    path: str
    #: how the user gave it, for messages: ``load_from``, ``--resume`` or
    #: ``--resume (latest checkpoint in WORK_DIR)``
    key: str
    resume: bool


def find_run_checkpoint(cfg: Config) -> Optional[RunCheckpoint]:
    """The checkpoint the run will load (``load_from``, or resumed: ``load_from`` or the
    latest in the work dir); None when it starts from scratch."""
    if cfg.get('resume', False):
        if cfg.get('load_from'):
            return RunCheckpoint(cfg.load_from, '--resume', True)
        path = find_latest_checkpoint(cfg.work_dir)
        if path is None:  # no checkpoint yet: mmengine starts from scratch
            return None
        return RunCheckpoint(path, f'--resume (latest checkpoint in {cfg.work_dir})', True)
    if cfg.get('load_from'):
        return RunCheckpoint(cfg.load_from, 'load_from', False)
    return None


def validate_run_checkpoints(cfg: Config) -> None:
    """Check the checkpoint a run will load (``load_from`` / resume) before it starts."""
    source = find_run_checkpoint(cfg)
    if source is not None:
        validate_checkpoint(source.path, source.key)


def is_epoch_based(cfg: Config) -> bool:
    """Whether ``cfg.train_cfg`` builds mmengine's ``EpochBasedTrainLoop``."""
    train_cfg = cfg.get('train_cfg', None) or {}
    return train_cfg.get('type', None) in ('EpochBasedTrainLoop', 'mmengine.EpochBasedTrainLoop') \
        or (train_cfg.get('type', None) is None and bool(train_cfg.get('by_epoch', False)))


def prepare_exact_resume(cfg: Config) -> None:
    """Settings under which a resumed run loads the data an uninterrupted run would.

    * Epoch-based runs get ``train_dataloader.persistent_workers=False``: mmengine seeds
      each data worker from (seed, rank, worker id) when it starts; a persistent worker
      carries its random state from epoch to epoch in a process a checkpoint cannot
      capture, so after a resume its augmentations would differ.
    * A resumed run takes the seed stored in its checkpoint *before* the runner is built
      (mmengine adopts it only after the sampler and the workers' seeds were derived from
      the config's seed, or from a fresh random one when ``randomness.seed`` is unset).
    """
    loader = cfg.get('train_dataloader', None)
    if is_epoch_based(cfg) and loader and loader.get('num_workers', 0) > 0 and \
            loader.get('persistent_workers', False):
        loader.persistent_workers = False
        print_log('train_dataloader.persistent_workers=True -> False in this epoch-based run: '
                  'data workers restart each epoch from their seeds, so a resumed run '
                  'augments exactly as an uninterrupted one (docs/run_lifecycle.md)', 'current')
    source = find_run_checkpoint(cfg)
    if source is None or not source.resume:
        return
    path = source.path
    seed = CheckpointLoader.load_checkpoint(path, map_location='cpu').get('meta', {}).get('seed')
    randomness = dict(cfg.get('randomness', None) or {})
    if seed is not None and randomness.get('seed', None) != seed:
        if randomness.get('seed', None) is not None:
            print_log(f'randomness.seed={randomness["seed"]} -> {seed}: resuming continues the '
                      f'random streams of the checkpoint {path}', 'current',
                      level=logging.WARNING)
        randomness['seed'] = seed
        cfg.randomness = randomness
