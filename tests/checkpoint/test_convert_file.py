"""swin_dense.checkpoint.convert_file and tools/convert_checkpoint.py: file to file, both ways, and a file
that is no SwinV2 checkpoint ends the CLI with a message."""
import pytest
import torch

from checkpoint_helpers import cli_main, ours, randomize_
from swin_dense.checkpoint import convert_checkpoint, read_checkpoint


def test_round_trip_through_files(tmp_path):
    state = randomize_(ours(), seed=7).state_dict()
    torch.save({'state_dict': state}, tmp_path / 'ours.pth')
    convert_checkpoint(str(tmp_path / 'ours.pth'), str(tmp_path / 'official.pth'), dst_format='official')
    official, _ = read_checkpoint(str(tmp_path / 'official.pth'))
    assert 'norm.weight' in official
    convert_checkpoint(str(tmp_path / 'official.pth'), str(tmp_path / 'back.safetensors'))
    back, _ = read_checkpoint(str(tmp_path / 'back.safetensors'))
    assert back.keys() == state.keys() and all(torch.equal(back[k], state[k]) for k in state)


# ------------------------------------------------------------------------------------ refused inputs

def test_non_swinv2_file_exits_with_a_message(tmp_path, capsys):
    torchvision = pytest.importorskip('torchvision')
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / 'resnet18.pth')
    status, out, err = cli_main(capsys, str(tmp_path / 'resnet18.pth'), str(tmp_path / 'out.pth'))
    assert status == 1 and out == ''
    assert err.startswith('error: cannot convert') and 'not a SwinV2 checkpoint' in err and 'conv1.weight' in err
    assert not (tmp_path / 'out.pth').exists()
    status, _, err = cli_main(capsys, str(tmp_path / 'missing.pth'), str(tmp_path / 'out.pth'))
    assert status == 1 and 'does not exist' in err
