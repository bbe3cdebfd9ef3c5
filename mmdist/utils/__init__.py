# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
from .launch import load_run_config, setup_cpu_distributed

__all__ = ['load_run_config', 'setup_cpu_distributed']
