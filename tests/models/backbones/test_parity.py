"""Parity with two independent SwinV2 implementations on the same weights: timm and HF transformers.

Every stage output must agree within 1e-5 at sizes where the peers are correct (multiples of
32 x window), for window 8 and 16, with and without a pretrained window.
"""
import pytest
import torch

from swin_dense import SwinTransformerV2
from swin_dense.checkpoint import to_backbone_state_dict

timm_v2 = pytest.importorskip('timm.models.swin_transformer_v2')

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


def _ours(window: int, pws: int, state_dict) -> SwinTransformerV2:
    model = SwinTransformerV2(arch=ARCH, window_size=window, pretrained_window_size=pws, attn_impl='eager',
                              drop_path_rate=0.0).eval()
    own = model.state_dict()
    missing = set(own) - set(state_dict)
    assert missing == {'norm0.weight', 'norm0.bias', 'norm1.weight', 'norm1.bias', 'norm2.weight', 'norm2.bias'}
    model.load_state_dict(state_dict, strict=False)
    return model


@pytest.mark.parametrize('window, pws, size', CASES)
def test_matches_timm(window, pws, size):
    peer = timm_v2.SwinTransformerV2(img_size=size, embed_dim=ARCH['embed_dims'], depths=ARCH['depths'],
                                     num_heads=ARCH['num_heads'], window_size=window,
                                     pretrained_window_sizes=(pws,) * 4, num_classes=0, drop_path_rate=0.0).eval()
    _randomise(peer, window + pws)
    state_dict, layout = to_backbone_state_dict(peer.state_dict())
    assert layout == 'timm'
    model = _ours(window, pws, state_dict)
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        outs = model(x)
        feats, h = [], peer.patch_embed(x)
        for stage in peer.layers:
            h = stage(h)
            feats.append(h)
        final = peer.norm(h)
    for i, (out, feat) in enumerate(zip(outs[:3], feats[:3])):
        expected = getattr(model, f'norm{i}')(feat).permute(0, 3, 1, 2)
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=0, msg=f'stage {i}')
    torch.testing.assert_close(outs[3], final.permute(0, 3, 1, 2), atol=1e-5, rtol=0, msg='stage 3')


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
    model = _ours(window, pws, state_dict)
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        outs = model(x)
        embedded, dims = peer.embeddings(x)
        encoded = peer.encoder(embedded, dims, output_hidden_states=True,
                               output_hidden_states_before_downsampling=True, return_dict=True)
        final = peer(x).last_hidden_state  # (B, L, C) after HF's final layernorm
    for i in range(3):
        expected = getattr(model, f'norm{i}')(encoded.reshaped_hidden_states[i + 1].permute(0, 2, 3, 1))
        torch.testing.assert_close(outs[i], expected.permute(0, 3, 1, 2), atol=1e-5, rtol=0, msg=f'stage {i}')
    torch.testing.assert_close(outs[3].flatten(2).transpose(1, 2), final, atol=1e-5, rtol=0, msg='stage 3')
