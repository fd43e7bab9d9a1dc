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


def xdist_group(item) -> str:
    """A test file's tests run in one process (its module fixtures are built once), but
    each trained system's tests of test_deploy_trained.py make a group of their own."""
    name = getattr(item, 'callspec', None) and item.callspec.params.get('name')
    if item.module.__name__ == 'test_deploy_trained' and name:
        return f'trained-{name}'
    return item.nodeid.split('::')[0]


def pytest_collection_modifyitems(config, items):
    """With pytest-xdist's ``--dist loadgroup`` (make test), the groups of
    :func:`xdist_group`, the trained systems first: the longest groups start first and the
    test files fill the processes' time around them."""
    if not config.pluginmanager.hasplugin('xdist'):
        return
    for item in items:
        item.add_marker(pytest.mark.xdist_group(xdist_group(item)))
    items.sort(key=lambda item: not xdist_group(item).startswith('trained-'))
