"""SwinV2-H and SwinV2-G: the archs as mmpretrain 1.2.0 defines them, and its extra norms every n blocks.

* Numerics: a tiny arch with ``extra_norm_every_n_blocks=2`` (a 3-block stage, so one block with and
  one after it without) computes what mmpretrain's computes on the same random weights, at every
  stage, as tests/numerics.py states (the same math in float64; our fp32 within 3e-5 of the output's
  magnitude of mmpretrain's float64 output), at a window multiple and at a size that is not one.
* Size: 'huge' and 'giant', built with their parameters on the meta device (3 B parameters are never
  allocated), have mmpretrain's parameter count, and every tensor lands on an mmpretrain tensor of the
  same shape through the mmpretrain layout.
"""
import os
import sys

import pytest
import torch
import torch.nn as nn

from numerics import assert_matches
from swin_dense import SwinTransformerV2
from swin_dense.arch import ARCH_ZOO, has_extra_norm
from swin_dense.benchmark.meta import empty_parameters, parameter_count
from swin_dense.checkpoint import from_official_state_dict, to_official_state_dict
from swin_dense.checkpoint.layouts import LAYOUTS

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                'checkpoint'))
from checkpoint_helpers import randomize_  # noqa: E402

mmp = pytest.importorskip('mmpretrain.models.backbones')

ARCH = dict(embed_dims=16, depths=[2, 2, 3, 2], num_heads=[1, 2, 2, 4], extra_norm_every_n_blocks=2)
WINDOW = 4


def _mmpretrain(arch, **kwargs) -> nn.Module:
    return mmp.SwinTransformerV2(arch=arch, window_size=WINDOW, drop_path_rate=0.0, out_indices=(0, 1, 2, 3),
                                 pad_small_map=False, **kwargs)


def _weights(source: nn.Module) -> dict:
    """mmpretrain's parameters in this backbone's keys, through the mmpretrain layout."""
    params = {k: v for k, v in source.state_dict().items() if k in dict(source.named_parameters())}
    official = LAYOUTS['mmpretrain'].to_official(params)
    last = f'norm{len(source.stages) - 1}.'
    return {last + k[len('norm.'):] if k.startswith('norm.') else k: v for k, v in official.items()}


def test_extra_norms_sit_where_mmpretrain_puts_them():
    ours = SwinTransformerV2(arch=ARCH, window_size=WINDOW)
    extra = sorted(k for k in ours.state_dict() if '.norm3.' in k)
    expected = sorted(f'layers.{i}.blocks.{j}.norm3.{p}' for i, depth in enumerate(ARCH['depths'])
                      for j in range(depth) if (j + 1) % 2 == 0 for p in ('weight', 'bias'))
    assert extra == expected and len(expected) == 8  # blocks 1 of every stage; block 2 of the 3-block stage has none
    assert [has_extra_norm(j, 6) for j in range(12)] == [j in (5, 11) for j in range(12)]
    assert not any(has_extra_norm(j, 0) for j in range(12))


@pytest.mark.numerics
@pytest.mark.parametrize('size', [128, 100])  # 128 = 32 x window; 100: maps 25, 13, 7, 4 (padding, odd merges)
def test_extra_norm_parity_with_mmpretrain(size):
    source = randomize_(_mmpretrain(ARCH), seed=5)
    ours = SwinTransformerV2(arch=ARCH, window_size=WINDOW, drop_path_rate=0.0, attn_impl='eager').eval()
    ours.load_state_dict(_weights(source), strict=False)
    missing = {k for k in ours.state_dict() if k not in _weights(source)}
    assert not {k for k in missing if 'relative_' not in k and 'attn_mask' not in k}, missing
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours32 = list(ours(x))
        ours64 = list(ours.double()(x.double()))
        expected = list(source.double()(x.double()))
    assert_matches(ours32, ours64, expected, f'extra norms, mmpretrain at {size}px: stage')


def test_extra_norms_change_the_output():
    """The parity above would hold vacuously if norm3 were never applied: with norm3 made the identity
    (weight 1, bias 0), the outputs move."""
    source = randomize_(_mmpretrain(ARCH), seed=5)
    ours = SwinTransformerV2(arch=ARCH, window_size=WINDOW, drop_path_rate=0.0).eval()
    ours.load_state_dict(_weights(source), strict=False)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = ours(x)[-1]
        for block in (b for stage in ours.layers for b in stage.blocks if b.norm3 is not None):
            nn.init.ones_(block.norm3.weight)
            nn.init.zeros_(block.norm3.bias)
        after = ours(x)[-1]
    assert (before - after).abs().max() > 1e-2


@pytest.mark.parametrize('name', ['huge', 'giant'])
def test_named_arch_matches_mmpretrain_on_meta(name):
    assert ARCH_ZOO[name] == mmp.SwinTransformerV2.arch_zoo[name]
    with empty_parameters():
        ours = SwinTransformerV2(arch=name, window_size=WINDOW)
        theirs = _mmpretrain(name)
    assert all(p.is_meta for p in ours.parameters()) and all(p.is_meta for p in theirs.parameters())
    assert parameter_count(ours) == parameter_count(theirs)
    assert parameter_count(ours) == {'huge': 655_079_632, 'giant': 2_997_850_848}[name]  # read off mmpretrain
    params = dict(ours.named_parameters())
    as_mmpretrain = from_official_state_dict(to_official_state_dict(params), 'mmpretrain')
    expected = {k: tuple(p.shape) for k, p in theirs.named_parameters()}
    assert {k: tuple(v.shape) for k, v in as_mmpretrain.items()} == expected


@pytest.mark.parametrize('arch, message', [
    (dict(ARCH, extra_norm_every_n_blocks=-1), 'extra_norm_every_n_blocks must be 0'),
    (dict(ARCH, extra_norm=True), 'unknown keys'),
])
def test_bad_arch_dicts_are_refused(arch, message):
    with pytest.raises(ValueError, match=message):
        SwinTransformerV2(arch=arch)
