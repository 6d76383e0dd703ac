"""swin_dense.checkpoint.v1.convert: tensors with no place and missing ones are named, a file already in the
OpenMMLab layout is refused, and pickled code in a V1 checkpoint is refused and never runs."""
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from checkpoint_helpers import Payload, cli_main  # noqa: E402
from swin_dense.checkpoint import CheckpointError, convert_v1_state_dict  # noqa: E402
from v1_helpers import official_from_timm  # noqa: E402
from v1_helpers import timm_converted  # noqa: E402,F401 (a fixture)


def test_unknown_and_missing_keys_are_named(timm_converted):
    src = timm_converted[0]
    state = src.state_dict()
    with pytest.raises(CheckpointError, match=r'1 tensor\(s\) .* no place .*absolute_pos_embed'):
        convert_v1_state_dict({**state, 'absolute_pos_embed': torch.zeros(1, 3136, 16)})
    del state['layers.2.blocks.1.mlp.fc2.bias']
    with pytest.raises(CheckpointError, match=r'lacks 1 tensor\(s\) .*layers\.2\.blocks\.1\.mlp\.fc2\.bias'):
        convert_v1_state_dict(state)
    converted = convert_v1_state_dict(src.state_dict()).state_dict
    with pytest.raises(CheckpointError, match='already in the OpenMMLab layout'):
        convert_v1_state_dict({'backbone.' + k: v for k, v in converted.items()})


def test_pickled_payload_is_refused_and_never_runs(timm_converted, tmp_path, capsys):
    target = tmp_path / 'pwned.txt'
    official = official_from_timm(timm_converted[0].state_dict())
    torch.save({'model': official, 'extra': Payload(str(target))}, tmp_path / 'swin_tiny_patch4_window7_224.pth')
    status, out, err = cli_main(capsys, str(tmp_path / 'swin_tiny_patch4_window7_224.pth'), str(tmp_path / 'o.pth'))
    assert status == 1 and out == '' and 'refusing to load' in err
    assert not target.exists() and not (tmp_path / 'o.pth').exists()
    # The payload is live: an unsafe load runs it (so the check above can fail).
    with open(tmp_path / 'swin_tiny_patch4_window7_224.pth', 'rb') as f:
        torch.load(f, weights_only=False)
    assert target.read_text() == 'pwned'
