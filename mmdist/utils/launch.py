# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""What tools/train.py and tools/test.py share: config loading and CPU multi-process setup."""
import os.path as osp
from datetime import timedelta
from typing import Optional

import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.logging import print_log


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
    return cfg


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
        timeout = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('timeout', 1800)
        torch_dist.init_process_group(backend='gloo', timeout=timedelta(seconds=timeout))
    wrapper = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel')
    wrapper.setdefault('device_ids', None)
    cfg.model_wrapper_cfg = wrapper
    print_log(f'no CUDA device: distributed run over gloo on CPU (rank '
              f'{torch_dist.get_rank()} of {torch_dist.get_world_size()})', 'current')

