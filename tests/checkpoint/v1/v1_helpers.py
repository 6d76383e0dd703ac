"""Shared by tests/checkpoint/v1: Swin V1 checkpoints (official, HF, timm) convert for mmdet's / mmseg's own
``SwinTransformer``; the tiny random sources, mmdet's / mmseg's models, and how their outputs are compared.

Sources are tiny random models built with their own library (HF transformers ``SwinModel``, timm
``SwinTransformer``) with every parameter randomised (LayerNorms around (1, 0), bias tables and
matrices away from their init), so that a wrong mapping, a wrong patch-merging channel order or a
swapped norm changes the outputs. The official layout is built from the timm weights by the
documented key scheme (downsample back at the end of its stage, buffers and head added).

How stage outputs are compared: mmdet's ``SwinTransformer`` returns, for every stage i, the stage's
features before its patch merging passed through an output norm ``norm{i}``. A classification
checkpoint has only the final norm, which the converter maps to ``norm3``; ``norm0..2`` have no
source and are added as LayerNorm(1, 0). So:

* stage 3 is compared with the peer's own final-normed features (timm ``forward_features``, HF
  ``last_hidden_state``): this checks the final-norm mapping exactly;
* stages 0-2: after loading, ``norm0..2`` are randomised in the mmdet model and the same
  ``F.layer_norm`` with those weights is applied to the peer's features before patch merging (timm
  ``forward_intermediates(norm=False)``, HF ``output_hidden_states_before_downsampling``); equal
  results mean equal pre-norm stage features, which is what the checkpoint determines.

At 448 px the stage maps are 112, 56, 28, 14: every one larger than the window 7, where all three
implementations shift every second block. At 224 px the last map is 7x7 = the window: the official
code, HF and timm stop shifting there, mmdet/mmseg keep shifting; ``test_last_stage_at_224...``
(test_v1_mmdet_layout.py) measures that difference.
"""
import copy
from typing import Dict, List, Sequence, Tuple

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import ConfigDict

from numerics import assert_matches
from swin_dense.checkpoint import convert_checkpoint, read_checkpoint

timm_swin = pytest.importorskip('timm.models.swin_transformer')
transformers = pytest.importorskip('transformers')
mmdet_backbones = pytest.importorskip('mmdet.models.backbones')

ARCH = dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8])
WINDOW = 7
SIZE = 448  # stage maps 112, 56, 28, 14: all larger than the window
INDEX = 'relative_position_index'


def randomize_(model: nn.Module, seed: int) -> nn.Module:
    """Give every parameter a random value away from its init; eval mode.

    LayerNorms: weights around 1, biases around 0; bias tables N(0, 1); matrices N(0, 1/fan_in);
    other vectors N(0, 0.5).
    """
    gen = torch.Generator().manual_seed(seed)
    norms = {id(p) for m in model.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters()}
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if id(p) in norms:
                p.copy_(noise * 0.5 + (1.0 if name.endswith('weight') else 0.0))
            elif name.endswith('relative_position_bias_table'):
                p.copy_(noise)
            elif p.dim() >= 2:
                p.copy_(noise / p[0].numel() ** 0.5)
            else:
                p.copy_(noise * 0.5)
    return model.eval()


def timm_model(size: int = SIZE, seed: int = 1) -> nn.Module:
    """A tiny random timm Swin V1 classifier for ``size`` px (timm fixes the input size at build)."""
    model = timm_swin.SwinTransformer(img_size=size, patch_size=4, window_size=WINDOW, embed_dim=ARCH['embed_dims'],
                                      depths=ARCH['depths'], num_heads=ARCH['num_heads'], num_classes=10,
                                      drop_path_rate=0.0)
    return randomize_(model, seed)


def hf_model(size: int = SIZE, seed: int = 2) -> nn.Module:
    """A tiny random HF ``SwinForImageClassification`` (it stops shifting a stage whose map is <= the window)."""
    config = transformers.SwinConfig(image_size=size, patch_size=4, embed_dim=ARCH['embed_dims'],
                                     depths=ARCH['depths'], num_heads=ARCH['num_heads'], window_size=WINDOW,
                                     num_labels=10, drop_path_rate=0.0, hidden_dropout_prob=0.0,
                                     attention_probs_dropout_prob=0.0)
    return randomize_(transformers.SwinForImageClassification(config), seed)


def mmdet_swin(window_size: int = WINDOW, library: str = 'mmdet', **kwargs) -> nn.Module:
    """mmdet's (or mmseg's) Swin V1 backbone of ARCH, all four outputs."""
    if library == 'mmseg':
        from mmseg.models.backbones import SwinTransformer
    else:
        SwinTransformer = mmdet_backbones.SwinTransformer
    model = SwinTransformer(**ARCH, window_size=window_size, drop_path_rate=0.0, out_indices=(0, 1, 2, 3), **kwargs)
    model.eval()  # its train() returns None, so do not chain
    return model


def pretrained(path: str) -> ConfigDict:
    """``init_cfg`` as a config file gives it (mmdet's SwinTransformer reads ``init_cfg.checkpoint``)."""
    return ConfigDict(type='Pretrained', checkpoint=str(path))


def backbone_state(path: str) -> Dict[str, torch.Tensor]:
    """The converted file's state dict without its ``backbone.`` prefix."""
    state, _ = read_checkpoint(str(path))
    assert all(k.startswith('backbone.') for k in state)
    return {k[len('backbone.'):]: v for k, v in state.items()}


def load_strictly(model: nn.Module, state: Dict[str, torch.Tensor]) -> nn.Module:
    """Load ``state`` strictly: it must fill every parameter and hold nothing the model lacks.

    The converted files hold parameters only. The models' ``relative_position_index`` buffers are
    fixed functions of the window that the model builds itself (a copy in the file would stop
    mmdet/mmseg from loading it into another window), so they are the only keys allowed missing,
    and are taken from the model for the strict load.
    """
    own = model.state_dict()
    assert sorted(set(state) - set(own)) == []
    assert sorted(set(own) - set(state)) == sorted(k for k in own if k.endswith(INDEX))
    model.load_state_dict({**state, **{k: v for k, v in own.items() if k.endswith(INDEX)}}, strict=True)
    return model


def converted_model(path: str, library: str = 'mmdet', window_size: int = WINDOW) -> nn.Module:
    """mmdet's SwinTransformer with ``path`` loaded strictly, and checked against its own init_cfg loading."""
    model = load_strictly(mmdet_swin(window_size, library), backbone_state(path))
    via_init_cfg = mmdet_swin(window_size, library, init_cfg=pretrained(path))
    via_init_cfg.init_weights()  # mmdet/mmseg's own loading (backbone. keys, non-strict)
    theirs = via_init_cfg.state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in model.state_dict().items()), f'{library} init_cfg load differs'
    return model


def randomize_output_norms_(model: nn.Module, stages: Sequence[int] = (0, 1, 2)) -> None:
    """Give the added output norms random affine weights (see the module docstring)."""
    gen = torch.Generator().manual_seed(99)
    with torch.no_grad():
        for i in stages:
            norm = getattr(model, f'norm{i}')
            norm.weight.copy_(1 + 0.5 * torch.randn(norm.weight.shape, generator=gen))
            norm.bias.copy_(0.5 * torch.randn(norm.bias.shape, generator=gen))


def mmdet_outputs(model: nn.Module, x: torch.Tensor) -> List[torch.Tensor]:
    """The four outputs, NHWC."""
    with torch.no_grad():
        return [out.permute(0, 2, 3, 1) for out in model(x)]


def expected_outputs(model: nn.Module, raw: Sequence[torch.Tensor], final: torch.Tensor) -> List[torch.Tensor]:
    """Peer features (NHWC) as mmdet reports them: stages 0-2 through mmdet's norm{i}, stage 3 the peer's final norm."""
    out = []
    for i, feat in enumerate(raw[:3]):
        norm = getattr(model, f'norm{i}')
        out.append(F.layer_norm(feat, feat.shape[-1:], norm.weight.detach(), norm.bias.detach(), norm.eps))
    return out + [final]


def timm_features(src: nn.Module, x: torch.Tensor) -> Tuple[List[torch.Tensor], torch.Tensor]:
    """(stage features before patch merging and any norm, NHWC; final-normed features, NHWC)."""
    with torch.no_grad():
        raw = src.forward_intermediates(x, norm=False, intermediates_only=True)  # NCHW
        return [feat.permute(0, 2, 3, 1) for feat in raw], src.forward_features(x)


def hf_features(src: nn.Module, x: torch.Tensor) -> Tuple[List[torch.Tensor], torch.Tensor]:
    """(stage features before patch merging, NHWC; final-normed features, NHWC) of an HF Swin V1."""
    with torch.no_grad():
        embedded, dims = src.swin.embeddings(x)
        encoded = src.swin.encoder(embedded, dims, output_hidden_states=True,
                                   output_hidden_states_before_downsampling=True, return_dict=True)
        raw = [h.permute(0, 2, 3, 1) for h in encoded.reshaped_hidden_states[1:]]
        final = src.swin(x).last_hidden_state  # (B, L, C) after the final layernorm
    return raw, final.reshape(raw[-1].shape)


def max_diffs(actual: Sequence[torch.Tensor], expected: Sequence[torch.Tensor]) -> List[float]:
    assert [a.shape for a in actual] == [e.shape for e in expected]
    return [(a - e).abs().max().item() for a, e in zip(actual, expected)]


def assert_same_outputs(model: nn.Module, src: nn.Module, peer_features, x: torch.Tensor, what: str,
                        stages: slice = slice(None)) -> None:
    """mmdet's outputs equal the peer's (``peer_features(src, x)``) as tests/numerics.py states: the same math
    in float64 (copies of both models), and mmdet's fp32 outputs close to the peer's float64 ones."""
    ours32 = mmdet_outputs(model, x)[stages]
    model64, src64, x64 = copy.deepcopy(model).double(), copy.deepcopy(src).double(), x.double()
    raw, final = peer_features(src64, x64)
    assert_matches(ours32, mmdet_outputs(model64, x64)[stages], expected_outputs(model64, raw, final)[stages], what)


def images(size: int = SIZE, seed: int = 0) -> torch.Tensor:
    return torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(seed))


def official_from_timm(timm_state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The state dict the official V1 code saves for the same weights: downsample at the end of its stage,
    ``head``, and its buffers (``relative_position_index`` per block, ``attn_mask`` per shifted block)."""
    official = {}
    for key, value in timm_state.items():
        parts = key.split('.')
        if key.startswith('layers.') and parts[2] == 'downsample':
            key = '.'.join(['layers', str(int(parts[1]) - 1)] + parts[2:])
        elif key.startswith('head.fc.'):
            key = 'head.' + key[len('head.fc.'):]
        official[key] = value
    for i, depth in enumerate(ARCH['depths']):
        for j in range(depth):
            official[f'layers.{i}.blocks.{j}.attn.relative_position_index'] = torch.zeros(49, 49, dtype=torch.long)
            if j % 2:
                official[f'layers.{i}.blocks.{j}.attn_mask'] = torch.zeros(4, 49, 49)
    return official


@pytest.fixture(scope='module')
def timm_converted(tmp_path_factory):
    """(timm source at 448 px, its .pth, the converted file, the conversion report lines)."""
    tmp = tmp_path_factory.mktemp('timm_v1')
    src = timm_model()
    torch.save(src.state_dict(), tmp / 'swin_timm.pth')
    result = convert_checkpoint(str(tmp / 'swin_timm.pth'), str(tmp / 'converted.pth'))
    return src, tmp / 'swin_timm.pth', tmp / 'converted.pth', result

