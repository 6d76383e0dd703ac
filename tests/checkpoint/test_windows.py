"""swin_dense.checkpoint.windows: the pretrained window a SwinV2 checkpoint needs, from its coordinate tables,
its file name or the flag; a checkpoint runs at larger windows, and a mismatch warns at load time."""
from typing import List
from unittest import mock

import pytest
import torch

from checkpoint_helpers import cli_main, load, official_layout, ours, randomize_
from swin_dense.checkpoint import CheckpointError, convert_checkpoint, convert_state_dict, read_checkpoint


def test_early_cpb_variant_is_refused():
    """A coordinate table of the arXiv-v1 / SimMIM-era CPB (log2(1+|x|) on [-1, 1]) is not the released one."""
    src = ours(window_size=8)
    sd = official_layout(src, trained_windows=[8, 8, 8, 4])
    offsets = torch.arange(-7, 8, dtype=torch.float32) / 7
    early = torch.stack(torch.meshgrid(offsets, offsets, indexing='ij'), dim=-1)
    sd['layers.0.blocks.1.attn.relative_coords_table'] = (torch.sign(early) * torch.log2(early.abs() + 1))[None]
    sd['layers.0.blocks.0.attn.relative_coords_table'] = sd['layers.0.blocks.1.attn.relative_coords_table']
    with pytest.raises(CheckpointError, match='another CPB variant'):
        convert_state_dict(sd)


# ---------------------------------------------------------------------------------- pretrained window

def test_window_12_checkpoint_runs_at_window_16_and_24(tmp_path):
    arch = dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2])
    src = randomize_(ours(arch=arch, window_size=12), seed=8)
    torch.save({'model': official_layout(src, trained_windows=[12, 12, 12, 6])}, tmp_path / 'w12.pth')
    result = convert_checkpoint(str(tmp_path / 'w12.pth'), str(tmp_path / 'w12_converted.pth'))
    assert result.meta['pretrained_window_size'] == [12, 12, 12, 6]
    for window in (16, 24):
        model, report = load(tmp_path / 'w12_converted.pth', arch=arch, window_size=window, out_indices=(3,),
                             pretrained_window_size=[12, 12, 12, 6])
        assert report['missing'] == [] and report['unexpected'] == []
        assert len(report['loaded']) == len(model.state_dict())
        with torch.no_grad():
            out = model(torch.randn(1, 3, 1024, 1024))
        assert out[0].shape == (1, 128, 32, 32) and torch.isfinite(out[0]).all()


def _warnings(path, **kwargs) -> List[str]:
    with mock.patch('swin_dense.models.backbones.pretrained.print_log') as log:
        load(path, **kwargs)
    return [call.args[0] for call in log.call_args_list if call.kwargs.get('level') == 30]


def test_pretrained_window_mismatch_warns(tmp_path):
    src = ours(window_size=12)
    torch.save({'model': official_layout(src, trained_windows=[12, 12, 12, 6])}, tmp_path / 'w12.pth')
    convert_checkpoint(str(tmp_path / 'w12.pth'), str(tmp_path / 'w12.safetensors'))
    assert read_checkpoint(str(tmp_path / 'w12.safetensors'))[1]['pretrained_window_size'] == [12, 12, 12, 6]

    warned = _warnings(tmp_path / 'w12.safetensors', window_size=16)  # pretrained_window_size left at 0
    assert len(warned) == 1 and 'Set pretrained_window_size=[12, 12, 12, 6]' in warned[0]
    assert _warnings(tmp_path / 'w12.safetensors', window_size=16, pretrained_window_size=[12, 12, 12, 6]) == []
    # The official file itself, unconverted: the stored coordinate tables tell the window.
    warned = _warnings(tmp_path / 'w12.pth', window_size=24, pretrained_window_size=12)
    assert len(warned) == 1 and '[12, 12, 12, 6]' in warned[0]


def test_pretrained_window_from_file_name_and_flag(tmp_path, capsys):
    state = ours().state_dict()  # no coordinate tables: only the name or the flag can tell
    name = tmp_path / 'swinv2_base_patch4_window12to16_192to256_22kto1k_ft.pth'
    torch.save({'state_dict': state}, name)
    result = convert_checkpoint(str(name), str(tmp_path / 'a.pth'))
    assert result.meta['pretrained_window_size'] == [12, 12, 12, 6]
    assert 'file name' in result.pretrained_window_source
    result = convert_checkpoint(str(name), str(tmp_path / 'b.pth'), pretrained_window_size=[16, 16, 16, 8])
    assert result.meta['pretrained_window_size'] == [16, 16, 16, 8]
    torch.save({'state_dict': state}, tmp_path / 'renamed.pth')
    result = convert_checkpoint(str(tmp_path / 'renamed.pth'), str(tmp_path / 'c.pth'))
    assert 'pretrained_window_size' not in result.meta
    assert any('--pretrained-window-size' in line for line in result.report('c.pth', 'backbone'))
    status, _, err = cli_main(capsys, str(name), str(tmp_path / 'd.pth'), '--pretrained-window-size', '8')
    assert status == 0, err
    assert read_checkpoint(str(tmp_path / 'd.pth'))[1]['pretrained_window_size'] == [8, 8, 8, 8]
