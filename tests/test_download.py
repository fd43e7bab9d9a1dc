"""Checkpoints downloaded for real from servers on 127.0.0.1: an ``https://``-style URL
(cached once whole, never half) and ``hf-hub:`` through a stand-in of the Hugging Face hub
(``HF_ENDPOINT``) serving safetensors files in timm's and transformers' layouts; a hub
checkpoint gives the outputs of the same weights loaded from a local file."""
import io
import json
import os
import os.path as osp
import subprocess
import sys
import textwrap

import pytest
import torch

from mmfocal.models.checkpoint import CheckpointError, hub_file, read_checkpoint

import _servers
from test_checkpoint import SMALL, build_loaded, imagenet_state_dict, to_huggingface, to_timm

from _helpers import ROOT
INPUT = torch.linspace(-1, 1, 2 * 3 * 64 * 48).reshape(2, 3, 64, 48)


def outputs(model):
    model.eval()
    with torch.no_grad():
        return [o.clone() for o in model(INPUT)]


def as_bytes(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@pytest.fixture
def torch_hub(tmp_path, monkeypatch):
    hub_dir = tmp_path / 'torch_hub'
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(hub_dir))
    return hub_dir / 'checkpoints'


# ------------------------------------------------------------------------ http(s)


def test_url_downloads_once_and_loads_as_the_file(tmp_path, torch_hub):
    sd = imagenet_state_dict()
    local = tmp_path / 'local.pth'
    torch.save({'model': sd}, local)
    expected = outputs(build_loaded(str(local), focal_windows=5))
    with _servers.file_server({'/v1/focalnet.pth': (local.read_bytes(), 'whole')}) as (
            server, url):
        for _ in range(2):
            got = outputs(build_loaded(f'{url}/v1/focalnet.pth', focal_windows=5))
            for a, b in zip(got, expected):
                torch.testing.assert_close(a, b, rtol=0, atol=0)
        assert server.requests == ['/v1/focalnet.pth']  # the second load reads the cache
    assert sorted(os.listdir(torch_hub)) == ['focalnet.pth']


@pytest.mark.parametrize('how, match', [
    ('cut', 'cut short: .* bytes arrived'),
    ('corrupt', 'not a readable checkpoint, so it was not cached'),
])
def test_a_partial_or_corrupt_download_is_an_error_and_never_cached(torch_hub, how, match):
    body = as_bytes({'model': imagenet_state_dict()})
    files = {'/w.pth': (body, how)}
    with _servers.file_server(files) as (server, url):
        with pytest.raises(CheckpointError, match=match):
            read_checkpoint(f'{url}/w.pth')
        assert not osp.exists(torch_hub / 'w.pth')
        assert not [n for n in os.listdir(torch_hub) if n.startswith('w.pth')]
        files['/w.pth'] = (body, 'whole')  # the server mended: the next run downloads it
        assert 'head.weight' in read_checkpoint(f'{url}/w.pth')['model']
        assert len(server.requests) == 2
    assert os.listdir(torch_hub) == ['w.pth']


def test_http_errors_and_a_wrong_hash_prefix(torch_hub):
    body = as_bytes(imagenet_state_dict())
    with _servers.file_server({'/focal-0123abcd.pth': (body, 'whole')}) as (_, url):
        with pytest.raises(CheckpointError, match='downloading .*/missing.pth failed.*404'):
            read_checkpoint(f'{url}/missing.pth')
        with pytest.raises(CheckpointError, match='does not start with the 0123abcd'):
            read_checkpoint(f'{url}/focal-0123abcd.pth')
    assert os.listdir(torch_hub) == []


# ------------------------------------------------------------------------ hf-hub

TIMM_REPO, HF_REPO = 'timm/focalnet_test.ms_in1k', 'microsoft/focalnet-test'
PR = 'refs/pr/2'  # where the hub's bot PRs hold a model.safetensors beside pytorch_model.bin


def hub_repos(sd):
    pytest.importorskip('safetensors')
    from safetensors.torch import save as to_safetensors
    timm_sd = {k: v.contiguous() for k, v in to_timm(sd).items()}
    hf_sd = to_huggingface(sd)
    return {
        # timm's repos: model.safetensors preferred over a pytorch_model.bin (here unreadable)
        (TIMM_REPO, 'main'): {'model.safetensors': to_safetensors(timm_sd),
                              'pytorch_model.bin': b'not weights'},
        # transformers' repos: pytorch_model.bin on main, model.safetensors on a PR revision
        (HF_REPO, 'main'): {'pytorch_model.bin': as_bytes(hf_sd)},
        (HF_REPO, PR): {'model.safetensors': to_safetensors(hf_sd)},
    }


LOAD = textwrap.dedent("""
    import json, sys, torch
    from mmfocal.models.backbones.focalnet import FocalNet
    from mmfocal.models.checkpoint import CheckpointError
    small, specs, out = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
    x = torch.linspace(-1, 1, 2 * 3 * 64 * 48).reshape(2, 3, 64, 48)
    results = {}
    for spec in specs:
        model = FocalNet(**small, focal_windows=5,
                         init_cfg=dict(type='Pretrained', checkpoint=spec))
        try:
            model.init_weights()
        except CheckpointError as exc:
            results[spec] = str(exc)
            continue
        with torch.no_grad():
            results[spec] = [o.clone() for o in model.eval()(x)]
    from mmengine.runner.checkpoint import _load_checkpoint  # load_from, tools/test.py
    try:
        results['mmengine'] = sorted(_load_checkpoint(specs[0]))
    except CheckpointError as exc:
        results['mmengine'] = str(exc)
    torch.save(results, out)
""")


def load_in_subprocess(tmp_path, endpoint, specs, **env):
    """Load ``specs`` in a fresh interpreter (huggingface_hub reads its settings when
    imported) with the stand-in as endpoint and a cache under ``tmp_path``."""
    out = tmp_path / 'results.pt'
    environ = {k: v for k, v in os.environ.items() if not k.startswith('HF_')}
    environ.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / 'hf_home'),
                   HF_HUB_DISABLE_XET='1', HF_HUB_DISABLE_TELEMETRY='1', HF_TOKEN='',
                   HF_HUB_ETAG_TIMEOUT='10', HF_HUB_DOWNLOAD_TIMEOUT='10',
                   PYTHONPATH=os.pathsep.join([ROOT, environ.get('PYTHONPATH', '')]), **env)
    result = subprocess.run(
        [sys.executable, '-c', LOAD, json.dumps(SMALL), json.dumps(specs), str(out)],
        cwd=ROOT, env=environ, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    return torch.load(out)


def test_hub_checkpoints_load_as_the_file_in_both_layouts(tmp_path):
    pytest.importorskip('huggingface_hub')
    sd = imagenet_state_dict()
    local = tmp_path / 'local.pth'
    torch.save({'model': sd}, local)
    expected = outputs(build_loaded(str(local), focal_windows=5))
    specs = [f'hf-hub:{TIMM_REPO}', f'hf-hub:{HF_REPO}@{PR}', f'hf-hub:{HF_REPO}',
             f'hf-hub:{HF_REPO}/pytorch_model.bin@main']
    with _servers.hub_server(hub_repos(sd)) as (server, endpoint):
        results = load_in_subprocess(tmp_path, endpoint, specs)
        for spec in specs:
            assert not isinstance(results[spec], str), results[spec]
            for a, b in zip(results[spec], expected):
                torch.testing.assert_close(a, b, rtol=0, atol=0, msg=spec)
        assert results['mmengine'] == sorted(to_timm(sd))  # what the hub file holds
        asked = [r for r in server.requests if r.startswith('GET')]
        assert f'GET /{TIMM_REPO}/resolve/main/model.safetensors' in asked
        assert not any('pytorch_model.bin' in r and TIMM_REPO in r for r in asked)
        assert f'GET /{HF_REPO}/resolve/refs%2Fpr%2F2/model.safetensors' in asked
        # offline: from the cache alone, and the server is not asked
        count = len(server.requests)
        offline = load_in_subprocess(tmp_path, endpoint, specs[:2], HF_HUB_OFFLINE='1')
        assert len(server.requests) == count
    for spec in specs[:2]:
        for a, b in zip(offline[spec], expected):
            torch.testing.assert_close(a, b, rtol=0, atol=0, msg=spec)


def test_hub_errors_name_the_repository_and_what_is_missing(tmp_path):
    pytest.importorskip('huggingface_hub')
    with _servers.hub_server(hub_repos(imagenet_state_dict())) as (_, endpoint):
        specs = ['hf-hub:nobody/nothing', f'hf-hub:{HF_REPO}@v9',
                 f'hf-hub:{HF_REPO}/focalnet.pth']
        results = load_in_subprocess(tmp_path, endpoint, specs)
        offline = load_in_subprocess(tmp_path, endpoint, [f'hf-hub:{TIMM_REPO}'],
                                     HF_HUB_OFFLINE='1')
    assert 'hf-hub:nobody/nothing' in results[specs[0]]
    assert 'Repository' in results[specs[0]] or 'RepoNotFound' in results[specs[0]]
    assert 'Revision' in results[specs[1]]
    assert 'no file focalnet.pth' in results[specs[2]]
    message = offline[f'hf-hub:{TIMM_REPO}']
    assert 'no file model.safetensors or pytorch_model.bin' in message and 'offline' in message


def test_hub_without_huggingface_hub_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, 'huggingface_hub', None)  # import fails
    with pytest.raises(CheckpointError, match=r"needs the huggingface_hub package: "
                                              r"pip install '\.\[hub\]' in mmfocal's clone"):
        hub_file('hf-hub:timm/focalnet_tiny_srf.ms_in1k')
    with pytest.raises(CheckpointError, match='a hub checkpoint is hf-hub:ORG/REPO'):
        hub_file('hf-hub:no-organisation')
