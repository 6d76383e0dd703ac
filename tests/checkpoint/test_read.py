"""swin_dense.checkpoint.read: pickled code is refused and never runs; meta survives .safetensors and .pth."""
import json

import torch

from checkpoint_helpers import ARCH, Payload, ours, run_cli
from swin_dense.checkpoint import convert_checkpoint, read_checkpoint


def test_pickled_payload_is_refused_and_never_runs(tmp_path):
    target = tmp_path / 'pwned.txt'
    torch.save({'model': ours().state_dict(), 'extra': Payload(str(target))}, tmp_path / 'evil.pth')
    result = run_cli(str(tmp_path / 'evil.pth'), str(tmp_path / 'out.pth'))
    assert result.returncode != 0
    assert 'refusing to load' in result.stderr and 'Traceback' not in result.stderr
    assert not target.exists()
    # The payload is live: an unsafe load runs it (so the check above can fail).
    with open(tmp_path / 'evil.pth', 'rb') as f:
        torch.load(f, weights_only=False)
    assert target.read_text() == 'pwned'


def test_meta_survives_safetensors_and_pth(tmp_path):
    state = ours().state_dict()
    torch.save({'state_dict': state}, tmp_path / 'src.pth')
    for dst in ('x.pth', 'x.safetensors'):
        convert_checkpoint(str(tmp_path / 'src.pth'), str(tmp_path / dst), pretrained_window_size=[12])
        loaded, meta = read_checkpoint(str(tmp_path / dst))
        assert meta['pretrained_window_size'] == [12, 12, 12, 12] and meta['source_layout'] == 'official'
        assert meta['arch'] == ARCH and loaded.keys() == state.keys()
    # .pth output is a plain dict of tensors and JSON-like meta: loadable with weights_only=True.
    assert json.dumps(torch.load(tmp_path / 'x.pth', weights_only=True)['meta'])
