import os
import sys

import pytest
import torch

# Test modules import shared helpers from each other (e.g. the functional references).
sys.path.insert(0, os.path.dirname(__file__))

if os.environ.get('PYTEST_XDIST_WORKER_COUNT'):
    # pytest -n N: the cores shared by the N processes (and the commands they start), not N
    # processes of as many threads as cores
    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    threads = max(1, cores // int(os.environ['PYTEST_XDIST_WORKER_COUNT']))
    os.environ.setdefault('OMP_NUM_THREADS', str(threads))
    torch.set_num_threads(int(os.environ['OMP_NUM_THREADS']))


@pytest.fixture(scope='session')
def trained(tmp_path_factory):
    """The store of trained paper systems (tests/_trained.py), shared by the run's processes:
    ``trained('atss_focalnet')`` -> config, checkpoint, work dir, images."""
    from _trained import TrainedModels
    root = tmp_path_factory.getbasetemp()
    if os.environ.get('PYTEST_XDIST_WORKER'):  # basetemp/popen-gwN: the run's folder is above
        root = root.parent
    return TrainedModels(str(root / 'trained'))


def pytest_collection_modifyitems(config, items):
    """The trained systems' tests first (tests/test_deploy_trained.py, each half a minute to
    a minute): pytest-xdist hands the tests out in this order, so the longest start first
    and the others fill the processes' time around them."""
    items.sort(key=lambda item: item.module.__name__ != 'test_deploy_trained')
