"""swin_dense.checkpoint.v1.layouts: timm, HF (a folder, and a bare ``SwinModel`` in one safetensors file) and
official Swin V1 checkpoints convert for mmdet's / mmseg's ``SwinTransformer``, every parameter used, and
compute what their source computes.

How the outputs are compared: tests/checkpoint/v1/v1_helpers.py.
"""
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from checkpoint_helpers import cli_main  # noqa: E402
from swin_dense.checkpoint import convert_checkpoint, convert_v1_state_dict, read_checkpoint  # noqa: E402
from v1_helpers import (ARCH, SIZE, WINDOW, assert_same_outputs, backbone_state, converted_model,  # noqa: E402
                        hf_features, hf_model, images, official_from_timm, randomize_output_norms_, timm_features)
from v1_helpers import timm_converted  # noqa: E402,F401 (a fixture)


@pytest.mark.numerics
def test_timm_matches_mmdet_and_mmseg(timm_converted):
    src, _, dst, result = timm_converted
    conv = result.conversion
    assert conv.layout == 'v1-timm' and result.meta['version'] == 'v1'
    assert result.meta['arch'] == {**ARCH, 'window_size': WINDOW}
    assert result.meta['trained_window_size'] == WINDOW
    lines = result.report(str(dst), 'backbone')
    assert lines[0].startswith('version: Swin V1') and lines[1] == 'layout: v1-timm'
    # Every parameter used; only the head dropped (timm keeps its buffers out of the state dict).
    assert conv.num_used == conv.num_source - 2 == sum(1 for _ in src.parameters()) - 2
    assert {r: len(k) for r, k in conv.dropped.items()} == {'classification head': 2}
    assert conv.added == [f'norm{i}.{p}' for i in range(3) for p in ('weight', 'bias')]
    converted = backbone_state(dst)
    assert all(torch.equal(converted[k], torch.tensor(v).float()) for k, v in
               (('norm0.weight', [1.0] * 16), ('norm2.bias', [0.0] * 64)))

    x = images()
    for library in ('mmdet', 'mmseg'):
        model = converted_model(dst, library)
        randomize_output_norms_(model)
        assert_same_outputs(model, src, timm_features, x, f'{library} vs timm at {SIZE}px: stage')


@pytest.mark.numerics
def test_hf_folder_through_the_cli(tmp_path, capsys):
    src = hf_model()
    src.save_pretrained(tmp_path / 'hf', safe_serialization=True)
    status, out, err = cli_main(capsys, str(tmp_path / 'hf'), str(tmp_path / 'converted.pth'))
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0].startswith('version: Swin V1') and lines[1] == 'layout: v1-hf'
    assert lines[2].startswith('architecture: embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8], '
                               'window_size=7')
    # Every parameter used (q/k/v weights and biases count as six); only head and index buffers dropped.
    params = sum(1 for _ in src.parameters())
    blocks = sum(ARCH['depths'])
    assert f'used {params - 2}/{params + blocks} source tensors' in out
    assert '2 classification head (e.g. head.' in out
    assert f'{blocks} window buffers (rebuilt by the model for its window)' in out
    assert "backbone config: dict(type='SwinTransformer', embed_dims=16, depths=[2, 2, 2, 2]" in out

    model = converted_model(tmp_path / 'converted.pth')
    randomize_output_norms_(model)
    assert_same_outputs(model, src, hf_features, images(), f'mmdet vs HF at {SIZE}px: stage')

    # SwinModel (no 'swin.' prefix, no head), saved as one safetensors file: the same weights.
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in src.swin.state_dict().items()}, str(tmp_path / 'swin_model.safetensors'))
    bare = convert_v1_state_dict(read_checkpoint(str(tmp_path / 'swin_model.safetensors'))[0])
    assert bare.layout == 'v1-hf' and set(bare.dropped) == {'window buffers (rebuilt by the model for its window)'}
    assert bare.num_used == sum(1 for _ in src.swin.parameters())
    folder = backbone_state(tmp_path / 'converted.pth')
    assert bare.state_dict.keys() == folder.keys()
    assert all(torch.equal(v, folder[k]) for k, v in bare.state_dict.items())


def test_official_layout_converts_to_the_same_state_dict(timm_converted, tmp_path):
    src, _, dst, _ = timm_converted
    torch.save({'model': official_from_timm(src.state_dict())}, tmp_path / 'swin_tiny_patch4_window7_224.pth')
    result = convert_checkpoint(str(tmp_path / 'swin_tiny_patch4_window7_224.pth'), str(tmp_path / 'official.pth'))
    conv = result.conversion
    assert conv.layout == 'v1-official'
    blocks, shifted = sum(ARCH['depths']), sum(d // 2 for d in ARCH['depths'])
    assert {r: len(k) for r, k in conv.dropped.items()} == {
        'window buffers (rebuilt by the model for its window)': blocks + shifted, 'classification head': 2}
    assert conv.num_used == sum(1 for _ in src.parameters()) - 2
    official, from_timm = backbone_state(tmp_path / 'official.pth'), backbone_state(dst)
    assert official.keys() == from_timm.keys()
    assert all(torch.equal(v, from_timm[k]) for k, v in official.items())
