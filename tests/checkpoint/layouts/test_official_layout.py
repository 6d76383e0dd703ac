"""swin_dense.checkpoint.layouts.official: a classifier in the official key scheme (window buffers, final
``norm``, head, pretrained windows 12, 12, 12, 6) converts and computes what its source computes.

How the parity is checked: tests/checkpoint/checkpoint_helpers.py.
"""
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from checkpoint_helpers import images, in_fp32_and_fp64, load, official_layout, ours, randomize_  # noqa: E402
from numerics import assert_matches  # noqa: E402
from swin_dense.checkpoint import convert_checkpoint  # noqa: E402


@pytest.mark.numerics
def test_official_classifier(tmp_path):
    src = randomize_(ours(window_size=12, out_indices=(3,)), seed=4)
    sd = official_layout(src, trained_windows=[12, 12, 12, 6])
    torch.save({'model': sd}, tmp_path / 'official.pth')
    result = convert_checkpoint(str(tmp_path / 'official.pth'), str(tmp_path / 'out.pth'))
    assert result.conversion.layout == 'official'
    assert result.conversion.trained_window == [12, 12, 12, 6]
    assert result.meta['pretrained_window_size'] == [12, 12, 12, 6]
    assert set(result.conversion.dropped) == {'classification head',
                                              'window buffers (rebuilt by the model for its window)'}

    model, report = load(tmp_path / 'out.pth', window_size=12, out_indices=(3,),
                         pretrained_window_size=[12, 12, 12, 6])
    assert report['missing'] == [] and report['unexpected'] == []
    x = images(192)
    (raw32, normed32), (raw64, normed64) = in_fp32_and_fp64(model, x)
    _, (raw_src, normed_src) = in_fp32_and_fp64(src, x)
    assert_matches(raw32, raw64, raw_src, 'official stage')
    assert_matches(normed32, normed64, normed_src, 'official final norm')
