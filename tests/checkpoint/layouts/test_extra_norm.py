"""The extra block norms of SwinV2-H / G (``norm3`` every n blocks) through the mmpretrain and SimMIM layouts.

An mmpretrain checkpoint with ``extra_norm_every_n_blocks=2`` converts (the period is read off its
tensors), loads with nothing missing or unexpected into the backbone built from the arch it reports,
and computes what mmpretrain computes (tests/numerics.py), also at a size that is not a window
multiple; the same weights in the SimMIM layout (``encoder.`` prefix, ``rpe_mlp``) convert to the same
state dict; norms at other blocks than every n-th are refused.
"""
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from checkpoint_helpers import SIZE, WINDOW, assert_same, images, in_fp32_and_fp64, load, randomize_  # noqa: E402
from numerics import assert_matches  # noqa: E402
from swin_dense.checkpoint import (CheckpointError, convert_checkpoint, convert_state_dict,  # noqa: E402
                                   from_official_state_dict, to_official_state_dict)

mmp = pytest.importorskip('mmpretrain.models.backbones')
ARCH = dict(embed_dims=16, depths=[2, 2, 3, 2], num_heads=[1, 2, 2, 4], extra_norm_every_n_blocks=2)


def _mmpretrain_checkpoint(path) -> torch.nn.Module:
    """A random mmpretrain classifier with extra norms, saved as mmpretrain saves it; returns its backbone."""
    source = randomize_(mmp.SwinTransformerV2(arch=ARCH, img_size=SIZE, window_size=WINDOW, drop_path_rate=0.0,
                                              out_indices=(0, 1, 2, 3), pad_small_map=False), seed=7)
    state = {'backbone.' + k: v for k, v in source.state_dict().items()}
    state['head.fc.weight'], state['head.fc.bias'] = torch.randn(10, 128), torch.randn(10)
    torch.save({'state_dict': state, 'meta': {'epoch': 300}}, path)
    return source


@pytest.mark.numerics
@pytest.mark.parametrize('size', [SIZE, 100])  # 100: maps 25, 13, 7, 4 (padding and odd merges)
def test_mmpretrain_extra_norms_convert_and_match(tmp_path, size):
    source = _mmpretrain_checkpoint(tmp_path / 'mmpretrain.pth')
    result = convert_checkpoint(str(tmp_path / 'mmpretrain.pth'), str(tmp_path / 'out.pth'))
    assert result.conversion.layout == 'mmpretrain'
    assert result.conversion.arch.config() == ARCH
    assert sum('.norm3.' in k for k in result.conversion.state_dict) == 8

    model, report = load(tmp_path / 'out.pth', arch=result.conversion.arch.config())
    assert report['missing'] == [] and report['unexpected'] == []
    (_, normed32), (_, normed64) = in_fp32_and_fp64(model, images(size))
    with torch.no_grad():
        expected = source.double()(images(size).double())
    assert_matches(normed32, normed64, expected, f'mmpretrain with extra norms at {size}px: output')


def test_simmim_extra_norms_convert_like_mmpretrain(tmp_path):
    _mmpretrain_checkpoint(tmp_path / 'mmpretrain.pth')
    from_mmpretrain = convert_checkpoint(str(tmp_path / 'mmpretrain.pth'), str(tmp_path / 'out.pth')).conversion
    simmim = from_official_state_dict(to_official_state_dict(from_mmpretrain.state_dict), 'simmim')
    assert any(k.startswith('encoder.layers.') and k.endswith('.norm3.weight') for k in simmim)
    conversion = convert_state_dict(simmim)
    assert conversion.layout == 'simmim' and conversion.arch.extra_norm_every_n_blocks == 2
    assert_same(conversion.state_dict, from_mmpretrain.state_dict, 'SimMIM vs mmpretrain with extra norms')


def test_extra_norms_off_the_period_are_refused(tmp_path):
    _mmpretrain_checkpoint(tmp_path / 'mmpretrain.pth')
    state = convert_checkpoint(str(tmp_path / 'mmpretrain.pth'), str(tmp_path / 'out.pth')).conversion.state_dict
    state['layers.2.blocks.2.norm3.weight'] = state['layers.2.blocks.1.norm3.weight'].clone()  # block 3 of 3: not 2k
    state['layers.2.blocks.2.norm3.bias'] = state['layers.2.blocks.1.norm3.bias'].clone()
    with pytest.raises(CheckpointError, match='no place in SwinTransformerV2'):
        convert_state_dict(to_official_state_dict(state))
