# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""Shared fixtures: tiny synthetic datasets in the official formats, written once per run;
every test starts from the same global random state."""
import os
import random

import numpy as np
import pytest
import torch

from mmdist.datasets import make_cityscapes_shapes, make_coco_shapes

# The suite runs the losses eagerly (also in the tools it starts as subprocesses):
# compiling every distinct loss graph would cost seconds each on a CPU. The loss tests
# run both paths (eager and traced), test_dist_loss_compile.py compiles with inductor, and
# so do the CUDA train-step tests (test_train_step_devices.py).
os.environ.setdefault('MMDIST_COMPILE', '0')

# Under pytest-xdist (`make test`: one worker per core), each worker and the tools it
# starts use one intra-op thread: two workers of two threads each on two cores would wait
# for each other.
if os.environ.get('PYTEST_XDIST_WORKER'):
    os.environ['OMP_NUM_THREADS'] = '1'
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def fixed_random_state():
    """Each test starts with torch's (CPU and CUDA), numpy's and python's global generators
    seeded: the models it builds and the batches it draws are the same in every run and do
    not depend on the tests that ran before it."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope='session')
def coco_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('coco_shapes'))
    make_coco_shapes(root, {'train': 4, 'val': 2}, image_size=(64, 64), object_size=(10, 32))
    return root


@pytest.fixture(scope='session')
def cityscapes_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('cityscapes_shapes'))
    make_cityscapes_shapes(root, {'train': 4, 'val': 2}, image_size=(32, 64))
    return root


@pytest.fixture(scope='module')
def one_cpu_thread():
    """Run a test module with one intra-op CPU thread (restored afterwards).

    The test networks are tiny; on a shared 2-core machine, two OpenMP threads make each
    of their convolutions about 100x slower than one (threads wait for each other).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
