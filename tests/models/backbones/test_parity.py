"""Parity with two independent SwinV2 implementations on the same weights: timm and HF transformers.

At sizes where the peers are correct (multiples of 32 x window), for window 8 and 16, with and
without a pretrained window, every stage output is compared as tests/numerics.py states: in
float64 our backbone and the peer compute the same math (to 1e-9 of the output's magnitude), and
our fp32 output is within 1e-5 of that magnitude of the peer's float64 output.
"""
from typing import Callable, List

import pytest
import torch

from numerics import FP32_RTOL, assert_matches, magnitude, max_error
from swin_dense import SwinTransformerV2
from swin_dense.checkpoint import to_backbone_state_dict

timm_v2 = pytest.importorskip('timm.models.swin_transformer_v2')
pytestmark = pytest.mark.numerics

ARCH = dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8])
CASES = [(8, 0, 256), (8, 6, 256), (16, 0, 512), (16, 12, 512)]


def _randomise(model: torch.nn.Module, seed: int) -> None:
    """Random weights everywhere (norms and logit scales included), so any mismatch shows."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if 'norm' in name and name.endswith('weight'):
                p.normal_(1.0, 0.2)
            elif 'logit_scale' in name:
                p.uniform_(1.0, 4.0)
            else:
                p.normal_(0.0, 0.05)


def _ours(window: int, pws: int, state_dict, attn_impl: str) -> SwinTransformerV2:
    model = SwinTransformerV2(arch=ARCH, window_size=window, pretrained_window_size=pws, attn_impl=attn_impl,
                              drop_path_rate=0.0).eval()
    own = model.state_dict()
    missing = set(own) - set(state_dict)
    assert missing == {'norm0.weight', 'norm0.bias', 'norm1.weight', 'norm1.bias', 'norm2.weight', 'norm2.bias'}
    model.load_state_dict(state_dict, strict=False)
    return model


def _image(size: int, seed: int) -> torch.Tensor:
    return torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(seed))


PeerStages = Callable[[torch.nn.Module, List[torch.nn.Module], torch.Tensor], List[torch.Tensor]]


def _outputs(state_dict, window: int, pws: int, x: torch.Tensor, peer: torch.nn.Module, peer_stages: PeerStages):
    """(our fp32 outputs per attention path, our float64 outputs, the peer's float64 outputs);
    ``peer_stages(peer, norms, x)`` gives the peer's stages 0-2 through our output norms ``norms`` (NCHW)
    and its final-norm output for stage 3."""
    with torch.no_grad():
        ours32 = {impl: list(_ours(window, pws, state_dict, impl)(x)) for impl in ('sdpa', 'eager')}
        model = _ours(window, pws, state_dict, 'eager').double()
        ours64 = list(model(x.double()))
        peer64 = peer_stages(peer.double(), [model.norm0, model.norm1, model.norm2], x.double())
    return ours32, ours64, peer64


def _compare(state_dict, window: int, pws: int, x: torch.Tensor, peer: torch.nn.Module, peer_stages: PeerStages,
             what: str) -> None:
    """Our fp32 outputs (fused SDPA and the official eager op order) and our float64 outputs against the
    peer's float64 outputs (:func:`_outputs`)."""
    ours32, ours64, peer64 = _outputs(state_dict, window, pws, x, peer, peer_stages)
    for impl, outs in ours32.items():
        assert_matches(outs, ours64, peer64, f'{what} ({impl}) stage')


def _timm_stages(peer: torch.nn.Module, norms: List[torch.nn.Module], x: torch.Tensor) -> List[torch.Tensor]:
    feats, h = [], peer.patch_embed(x)
    for stage in peer.layers:
        h = stage(h)
        feats.append(h)
    outs = [norm(feat).permute(0, 3, 1, 2) for norm, feat in zip(norms, feats)]
    return outs + [peer.norm(h).permute(0, 3, 1, 2)]


def _hf_stages(peer: torch.nn.Module, norms: List[torch.nn.Module], x: torch.Tensor) -> List[torch.Tensor]:
    embedded, dims = peer.embeddings(x)
    encoded = peer.encoder(embedded, dims, output_hidden_states=True,
                           output_hidden_states_before_downsampling=True, return_dict=True)
    maps = encoded.reshaped_hidden_states[1:]  # (B, C, h, w) per stage, before patch merging
    outs = [norm(m.permute(0, 2, 3, 1)).permute(0, 3, 1, 2) for norm, m in zip(norms, maps)]
    final = peer(x).last_hidden_state  # (B, L, C) after HF's final layernorm
    return outs + [final.transpose(1, 2).reshape(maps[3].shape)]


def _timm_case(window: int = 8, pws: int = 0, size: int = 256):
    peer = timm_v2.SwinTransformerV2(img_size=size, embed_dim=ARCH['embed_dims'], depths=ARCH['depths'],
                                     num_heads=ARCH['num_heads'], window_size=window,
                                     pretrained_window_sizes=(pws,) * 4, num_classes=0, drop_path_rate=0.0).eval()
    _randomise(peer, window + pws)
    state_dict, _ = to_backbone_state_dict(peer.state_dict())
    return peer, state_dict, _image(size, seed=window + pws)


@pytest.mark.parametrize('window, pws, size', CASES)
def test_matches_timm(window, pws, size):
    peer, state_dict, x = _timm_case(window, pws, size)
    assert to_backbone_state_dict(peer.state_dict())[1] == 'timm'
    _compare(state_dict, window, pws, x, peer, _timm_stages, 'timm')


@pytest.mark.parametrize('window, pws, size', CASES)
def test_matches_hf_transformers(window, pws, size):
    transformers = pytest.importorskip('transformers')
    config = transformers.Swinv2Config(image_size=size, patch_size=4, embed_dim=ARCH['embed_dims'],
                                       depths=ARCH['depths'], num_heads=ARCH['num_heads'], window_size=window,
                                       pretrained_window_sizes=[pws] * 4, drop_path_rate=0.0,
                                       hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    peer = transformers.Swinv2Model(config).eval()
    _randomise(peer, 100 + window + pws)
    state_dict, layout = to_backbone_state_dict(peer.state_dict())
    assert layout == 'hf'
    _compare(state_dict, window, pws, _image(size, seed=100 + window + pws), peer, _hf_stages, 'HF')


def _merge_order_swapped(state_dict):
    """Stage 0's patch merging reads its 2x2 neighbours in another order (channel chunks 1 and 2 swapped)."""
    weight = state_dict['layers.0.downsample.reduction.weight']
    c = weight.shape[1] // 4
    swapped = torch.cat([weight[:, :c], weight[:, 2 * c:3 * c], weight[:, c:2 * c], weight[:, 3 * c:]], dim=1)
    return {**state_dict, 'layers.0.downsample.reduction.weight': swapped}


def _without_q_bias(state_dict):
    return {**state_dict, 'layers.1.blocks.0.attn.q_bias': torch.zeros_like(state_dict['layers.1.blocks.0.attn.q_bias'])}


@pytest.mark.parametrize('defect', ['patch-merging channel order', 'missing q bias', 'shift mask left out'])
def test_parity_check_catches_real_defects(defect):
    """The bounds of tests/numerics.py let rounding through (the sdpa and eager op orders above both pass)
    but not a real defect: each of these fails both the float64 check and the fp32 check."""
    peer, state_dict, x = _timm_case()
    if defect == 'patch-merging channel order':
        state_dict = _merge_order_swapped(state_dict)
    elif defect == 'missing q bias':
        state_dict = _without_q_bias(state_dict)
    else:
        peer.layers[0].blocks[1].attn_mask.zero_()  # the shifted block of stage 0 attends across the seams
    ours32, ours64, peer64 = _outputs(state_dict, 8, 0, x, peer, _timm_stages)
    with pytest.raises(AssertionError, match='not the same math'):
        assert_matches(ours32['sdpa'], ours64, peer64, defect)
    worst = max(max_error(a, b, defect) / magnitude(b) for a, b in zip(ours32['sdpa'], peer64))
    assert worst > 100 * FP32_RTOL, f'{defect}: fp32 outputs only {worst:.3g} (relative) from the reference'
