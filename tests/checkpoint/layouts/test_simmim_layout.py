"""swin_dense.checkpoint.layouts.simmim: a SimMIM pretraining checkpoint (``encoder.`` with ``rpe_mlp``, mask
token, decoder) converts, drops the masked-image-modeling parts and computes what its encoder computes.

How the parity is checked: tests/checkpoint/checkpoint_helpers.py.
"""
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from checkpoint_helpers import ARCH, images, in_fp32_and_fp64, load, official_layout, ours, randomize_  # noqa: E402
from numerics import assert_matches  # noqa: E402
from swin_dense.checkpoint import convert_checkpoint  # noqa: E402


@pytest.mark.numerics
def test_simmim_pretraining(tmp_path):
    src = randomize_(ours(window_size=12), seed=5)
    encoder = official_layout(src, trained_windows=[12, 12, 12, 6])
    del encoder['head.weight'], encoder['head.bias']  # SimMIM's encoder has no head
    sd = {'encoder.' + k.replace('.cpb_mlp.', '.rpe_mlp.'): v for k, v in encoder.items()}
    sd['encoder.mask_token'] = torch.randn(1, 1, ARCH['embed_dims'])
    sd['decoder.0.weight'], sd['decoder.0.bias'] = torch.randn(3 * 32 * 32, 128, 1, 1), torch.randn(3 * 32 * 32)
    torch.save({'model': sd}, tmp_path / 'simmim_pretrain__swinv2_tiny__img192_window12__800ep.pth')
    result = convert_checkpoint(str(tmp_path / 'simmim_pretrain__swinv2_tiny__img192_window12__800ep.pth'),
                                str(tmp_path / 'out.pth'))
    assert result.conversion.layout == 'simmim'
    assert len(result.conversion.dropped['masked-image-modeling only (mask token, decoder)']) == 3
    assert result.meta['pretrained_window_size'] == [12, 12, 12, 6]

    model, report = load(tmp_path / 'out.pth', window_size=12)
    assert report['unexpected'] == [] and all(k.startswith(('norm0', 'norm1', 'norm2')) for k in report['missing'])
    x = images(192)
    (raw32, normed32), (raw64, normed64) = in_fp32_and_fp64(model, x)
    _, (raw_src, normed_src) = in_fp32_and_fp64(src, x)
    assert_matches(raw32, raw64, raw_src, 'SimMIM stage')
    assert_matches(normed32[3:], normed64[3:], normed_src[3:], 'SimMIM final norm')
