"""hf-hub:ORG/NAME[@REV] through huggingface_hub, offline, from a cache laid out as huggingface_hub lays it out.

huggingface_hub reads HF_HOME and HF_HUB_OFFLINE into its constants when it is imported, so the
loads run in a subprocess started with those variables (as a user's shell would set them).
"""
import json
import os
import subprocess
import sys

import pytest
from safetensors.torch import save_file

from checkpoint_helpers import ARCH, ROOT, ours
from swin_dense.checkpoint import CheckpointError
from swin_dense.checkpoint.hub import parse_hub_source

COMMIT = 'a' * 40
# A transformers Swinv2Config (the fields read.py reads) and a timm hub config (no model_type).
HF_CONFIG = dict(model_type='swinv2', image_size=64, patch_size=4, window_size=4, depths=ARCH['depths'],
                 pretrained_window_sizes=[0, 0, 0, 0], embed_dim=ARCH['embed_dims'])
TIMM_CONFIG = dict(architecture='swinv2_tiny_window8_256', num_classes=0)

LOADS = r'''
import json, sys
from swin_dense import SwinTransformerV2
from swin_dense.checkpoint import CheckpointError, read_checkpoint
from swin_dense.models.backbones.pretrained import load_pretrained
arch = json.loads(sys.argv[1])
out = {}
for source in sys.argv[2:]:
    try:
        model = SwinTransformerV2(arch=arch, window_size=4)
        report = load_pretrained(model, source)
        out[source] = dict(loaded=len(report['loaded']), meta=read_checkpoint(source)[1],
                           first=model.patch_embed.proj.weight.flatten()[:4].tolist())
    except CheckpointError as err:
        out[source] = dict(error=str(err))
print('RESULT ' + json.dumps(out))
'''


def _snapshot(hub, repo_id, config, state):
    """Lay out ``repo_id`` at revision main as huggingface_hub's cache does (blobs, snapshots/<commit>, refs)."""
    repo = hub / ('models--' + repo_id.replace('/', '--'))
    snapshot = repo / 'snapshots' / COMMIT
    snapshot.mkdir(parents=True)
    (repo / 'refs').mkdir()
    (repo / 'refs' / 'main').write_text(COMMIT)
    (snapshot / 'config.json').write_text(json.dumps(config))
    save_file({k: v.contiguous() for k, v in state.items()}, str(snapshot / 'model.safetensors'))


def test_transformers_and_timm_hub_models_load_offline(tmp_path):
    hub = tmp_path / 'hf_home' / 'hub'
    state = ours().state_dict()
    _snapshot(hub, 'org/swinv2-tiny-hf', HF_CONFIG, state)
    _snapshot(hub, 'timm/swinv2_tiny_window8_256.test', TIMM_CONFIG, state)
    env = dict(os.environ, HF_HOME=str(tmp_path / 'hf_home'), HF_HUB_OFFLINE='1', PYTHONPATH=ROOT)
    env.pop('HF_HUB_CACHE', None)
    sources = ['hf-hub:org/swinv2-tiny-hf', f'hf-hub:org/swinv2-tiny-hf@{COMMIT}',
               'hf-hub:timm/swinv2_tiny_window8_256.test', 'hf-hub:org/not-cached']
    run = subprocess.run([sys.executable, '-c', LOADS, json.dumps(ARCH), *sources], env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.split('RESULT ', 1)[1])
    expected = state['patch_embed.proj.weight'].flatten()[:4].tolist()
    for source in sources[:3]:
        assert 'error' not in out[source], out[source]
        assert out[source]['loaded'] == len(state) and out[source]['first'] == expected, source
    # The transformers config tells the window (image 64 / patch 4 = 16 -> stage windows min(4, 16 / 2^i)).
    assert out[sources[0]]['meta'] == {'pretrained_window_size': [4, 4, 4, 2]}
    assert out[sources[2]]['meta'] == {}
    error = out[sources[3]]['error']
    cache = os.path.join(str(hub), 'models--org--not-cached')
    assert 'HF_HUB_OFFLINE is set' in error and cache in error
    assert 'huggingface-cli download org/not-cached config.json model.safetensors' in error


def test_a_malformed_hub_id_says_how_to_write_it():
    assert parse_hub_source('hf-hub:org/name@v1') == ('org/name', 'v1')
    with pytest.raises(CheckpointError, match='write hf-hub:ORG/NAME'):
        parse_hub_source('hf-hub:name-only')
