# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
from .checkpoint import CheckpointError, read_checkpoint, validate_checkpoint
from .launch import (add_training_hooks, load_run_config, setup_cpu_distributed,
                     shutdown_distributed, validate_run_checkpoints)

__all__ = [
    'CheckpointError', 'read_checkpoint', 'validate_checkpoint', 'add_training_hooks',
    'load_run_config', 'setup_cpu_distributed', 'shutdown_distributed',
    'validate_run_checkpoints'
]
