"""swin_dense.checkpoint.layouts.hf: a random HF ``Swinv2ForImageClassification`` folder converts through the
CLI (its config.json tells the pretrained window) and computes what HF computes.

How the parity is checked: tests/checkpoint/checkpoint_helpers.py.
"""
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from checkpoint_helpers import (ARCH, SIZE, WINDOW, assert_all_used, cli_main, images, in_fp32_and_fp64,  # noqa: E402
                                load, randomize_)
from numerics import assert_matches  # noqa: E402


@pytest.mark.numerics
def test_hf_folder_through_the_cli(tmp_path, capsys):
    transformers = pytest.importorskip('transformers')
    config = transformers.Swinv2Config(
        image_size=SIZE, patch_size=4, embed_dim=ARCH['embed_dims'], depths=ARCH['depths'],
        num_heads=ARCH['num_heads'], window_size=WINDOW, num_labels=10, drop_path_rate=0.0,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    src = randomize_(transformers.Swinv2ForImageClassification(config), seed=2)
    src.save_pretrained(tmp_path / 'hf', safe_serialization=True)
    status, out, err = cli_main(capsys, str(tmp_path / 'hf'), str(tmp_path / 'out.pth'))
    assert status == 0, err
    assert 'layout: hf' in out
    assert 'pretrained_window_size: [4, 4, 4, 4] (from config.json)' in out
    total = len(src.state_dict())
    assert f'used {total - 2}/{total} source tensors' in out  # all but classifier.{weight,bias}
    assert_all_used(src.state_dict(), allowed_drops=['classification head'])

    model, report = load(tmp_path / 'out.pth')
    assert report['unexpected'] == [] and all(k.startswith(('norm0', 'norm1', 'norm2')) for k in report['missing'])
    x = images()
    (raw32, normed32), (raw64, normed64) = in_fp32_and_fp64(model, x)
    with torch.no_grad():
        src.double()
        embedded, dims = src.swinv2.embeddings(x.double())
        # Swinv2Model itself returns hidden states after each stage's patch merging; the encoder
        # can return them before it, which is what a backbone stage outputs.
        encoded = src.swinv2.encoder(embedded, dims, output_hidden_states=True,
                                     output_hidden_states_before_downsampling=True, return_dict=True)
        final = src.swinv2(x.double()).last_hidden_state  # (B, L, C) after the final layernorm
    assert_matches([r.permute(0, 3, 1, 2) for r in raw32], [r.permute(0, 3, 1, 2) for r in raw64],
                   encoded.reshaped_hidden_states[1:], 'HF stage')
    assert_matches([normed32[3].flatten(2).transpose(1, 2)], [normed64[3].flatten(2).transpose(1, 2)], [final],
                   'HF last_hidden_state vs norm3 output')
