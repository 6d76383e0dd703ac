"""swin_dense.benchmark.weights: the random weights and their peer layouts (no peer needed)."""
import math

import pytest
import torch

from bench_helpers import tiny_state
from swin_dense.benchmark.weights import (check_round_trip, differences, num_stages_of, peer_state_dict,
                                          timm_extra_norms)
from swin_dense.checkpoint import to_backbone_state_dict


@pytest.fixture(scope='module')
def state():
    return tiny_state()


def test_random_weights_are_seeded_and_not_degenerate(state):
    again = tiny_state()
    assert state.keys() == again.keys() and all(torch.equal(state[k], again[k]) for k in state)
    other = tiny_state(seed=1)
    assert not torch.equal(state['patch_embed.proj.weight'], other['patch_embed.proj.weight'])
    post_norm = state['layers.0.blocks.0.norm1.weight']  # a res-post-norm: not zero, around 1
    assert 0.5 < float(post_norm.mean()) < 1.5 and float(post_norm.std()) > 0.05
    assert abs(float(state['layers.0.blocks.0.attn.logit_scale'].mean()) - math.log(10)) < 1.0
    assert float(state['layers.0.blocks.0.attn.q_bias'].abs().max()) > 0


def test_num_stages_of(state):
    assert num_stages_of(state) == 4
    assert num_stages_of({'patch_embed.proj.weight': torch.zeros(1)}) == 0


@pytest.mark.parametrize('peer', ['timm', 'mmpretrain'])
def test_peer_layouts_read_back_bit_for_bit(state, peer):
    """The checkpoint converters read each peer layout back to the original tensors."""
    expected = {k: v for k, v in state.items() if k not in timm_extra_norms(state)} if peer == 'timm' else state
    back, layout = to_backbone_state_dict(peer_state_dict(state, peer), peer, num_stages=4)
    assert layout == peer and differences(expected, back) == []
    check_round_trip(peer_state_dict(state, peer), peer, expected, 4)  # does not raise


def test_timm_layout(state):
    timm_sd = peer_state_dict(state, 'timm')
    assert 'layers.1.downsample.reduction.weight' in timm_sd and 'layers.0.downsample.reduction.weight' not in timm_sd
    assert torch.equal(timm_sd['norm.weight'], state['norm3.weight'])
    assert set(timm_extra_norms(state)) == {f'norm{i}.{p}' for i in range(3) for p in ('weight', 'bias')}
    assert not any(k.startswith(('norm0', 'norm1', 'norm2')) for k in timm_sd)


def test_mmpretrain_layout(state):
    mmp = peer_state_dict(state, 'mmpretrain')
    assert 'patch_embed.projection.weight' in mmp and 'stages.1.downsample.reduction.weight' in mmp
    assert 'stages.0.blocks.0.attn.w_msa.logit_scale' in mmp and 'stages.0.blocks.0.ffn.layers.0.0.weight' in mmp
    # the merging weight is reordered (nn.Unfold order), not copied
    assert not torch.equal(mmp['stages.1.downsample.reduction.weight'], state['layers.0.downsample.reduction.weight'])


def test_unknown_peer(state):
    with pytest.raises(ValueError, match='no peer layout'):
        peer_state_dict(state, 'detectron2')


def test_differences_and_a_failed_round_trip(state):
    a = {'x': torch.zeros(2), 'y': torch.ones(2)}
    assert differences(a, {'x': torch.zeros(2), 'y': torch.ones(2)}) == []
    assert differences(a, {'x': torch.zeros(3), 'z': torch.ones(2)}) == ['missing y', 'unexpected z', 'differs x']
    broken = dict(peer_state_dict(state, 'mmpretrain'))
    broken['stages.0.blocks.0.attn.w_msa.logit_scale'] = broken['stages.0.blocks.0.attn.w_msa.logit_scale'] + 1
    with pytest.raises(RuntimeError, match='mmpretrain -> swin_dense conversion does not round-trip'):
        check_round_trip(broken, 'mmpretrain', state, 4)
