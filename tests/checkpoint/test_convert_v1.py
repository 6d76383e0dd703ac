"""Swin V1 checkpoints (official, HF, timm) convert for mmdet's / mmseg's own ``SwinTransformer``.

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
measures that difference.
"""
from typing import Dict, List, Sequence, Tuple

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import ConfigDict

from swin_dense import SwinTransformerV2
from test_convert_checkpoint import cli_main
from swin_dense.checkpoint import (CheckpointError, SwinV1Checkpoint, convert_checkpoint, convert_v1_state_dict,
                                   detect_version, load_pretrained, read_checkpoint)

timm_swin = pytest.importorskip('timm.models.swin_transformer')
transformers = pytest.importorskip('transformers')
mmdet_backbones = pytest.importorskip('mmdet.models.backbones')

ARCH = dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8])
WINDOW = 7
SIZE = 448  # stage maps 112, 56, 28, 14: all larger than the window
ATOL = 1e-5
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


# ----------------------------------------------------------------------------------------------- layouts

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
    raw, final = timm_features(src, x)
    for library in ('mmdet', 'mmseg'):
        model = converted_model(dst, library)
        randomize_output_norms_(model)
        diffs = max_diffs(mmdet_outputs(model, x), expected_outputs(model, raw, final))
        assert max(diffs) <= ATOL, f'{library} vs timm at {SIZE}px: max abs differences per stage {diffs}'


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

    x = images()
    raw, final = hf_features(src, x)
    model = converted_model(tmp_path / 'converted.pth')
    randomize_output_norms_(model)
    diffs = max_diffs(mmdet_outputs(model, x), expected_outputs(model, raw, final))
    assert max(diffs) <= ATOL, f'mmdet vs HF at {SIZE}px: max abs differences per stage {diffs}'

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


def test_last_stage_at_224_differs_only_by_the_shift(timm_converted, capsys):
    """At 224 px the last map (7x7) equals the window: the official code, HF and timm do not shift
    it, mmdet/mmseg do (with the shifted-window mask). Stages 0-2 still agree; the last one does not."""
    src448, _, dst, _ = timm_converted
    src = timm_model(224)
    src.load_state_dict(src448.state_dict())  # the same weights, built for 224 px
    model = converted_model(dst)
    randomize_output_norms_(model)
    x = images(224)
    raw, final = timm_features(src, x)
    outs, expected = mmdet_outputs(model, x), expected_outputs(model, raw, final)
    diffs = max_diffs(outs, expected)
    last = (outs[3] - expected[3]).abs()
    with capsys.disabled():
        print('\nSwin V1 at 224 px, window 7, mmdet vs timm max abs difference per stage: '
              + ', '.join(f'{d:.3g}' for d in diffs)
              + f'; last stage mean abs difference {last.mean().item():.3g}, its features\' std '
                f'{expected[3].std().item():.3g}')
    assert max(diffs[:3]) <= ATOL, diffs
    assert diffs[3] > 1e-2, diffs  # the last stage: shifted in mmdet, not in timm
    # The same for HF.
    hf = hf_model(224)
    model = load_strictly(mmdet_swin(), convert_v1_state_dict(hf.state_dict()).state_dict)
    randomize_output_norms_(model)
    raw, final = hf_features(hf, x)
    assert [layer.blocks[1].shift_size for layer in hf.swin.encoder.layers] == [3, 3, 3, 0]  # set by the forward
    hf_diffs = max_diffs(mmdet_outputs(model, x), expected_outputs(model, raw, final))
    with capsys.disabled():
        print('Swin V1 at 224 px, window 7, mmdet vs HF max abs difference per stage: '
              + ', '.join(f'{d:.3g}' for d in hf_diffs))
    assert max(hf_diffs[:3]) <= ATOL and hf_diffs[3] > 1e-2, hf_diffs


# ------------------------------------------------------------------------------------------- window 7 -> 12

def test_window_7_to_12(timm_converted, tmp_path, capsys):
    _, src_path, dst7, _ = timm_converted
    status, out, err = cli_main(capsys, str(src_path), str(tmp_path / 'w12.pth'), '--window-size', '12')
    assert status == 0, err
    notes = [line for line in out.splitlines() if line.startswith('note:')]
    assert len(notes) == 1 and 'from window 7 (169 rows) to window 12 (529 rows) by bicubic' in notes[0]
    assert 'at load time' in notes[0]
    resized, original = backbone_state(tmp_path / 'w12.pth'), backbone_state(dst7)
    assert read_checkpoint(str(tmp_path / 'w12.pth'))[1]['arch']['window_size'] == 12
    tables = [k for k in original if k.endswith('relative_position_bias_table')]
    assert len(tables) == sum(ARCH['depths'])
    for key in tables:
        table = original[key]  # (169, heads)
        heads = table.shape[1]
        reference = F.interpolate(table.T.reshape(1, heads, 13, 13), size=(23, 23), mode='bicubic',
                                  align_corners=False).reshape(heads, 23 * 23).T
        assert resized[key].shape == (23 * 23, heads)
        assert torch.allclose(resized[key], reference, atol=1e-6, rtol=0), key
    assert all(torch.equal(v, original[k]) for k, v in resized.items() if k not in tables)
    model = converted_model(tmp_path / 'w12.pth', window_size=12)
    # mmdet resizes a window-7 file itself when the model has window 12: the same tables.
    at_load = mmdet_swin(12, init_cfg=pretrained(dst7))
    at_load.init_weights()
    theirs = at_load.state_dict()
    assert all(torch.equal(model.state_dict()[k], theirs[k]) for k in tables)
    with torch.no_grad():
        outs = model(images(384))
    assert [o.shape[-1] for o in outs] == [96, 48, 24, 12]


# ---------------------------------------------------------------------------------- version detection

def test_versions_are_detected_and_reported(timm_converted, tmp_path, capsys):
    src, src_path, _, _ = timm_converted
    assert detect_version(src.state_dict()) == 'v1'
    v2 = SwinTransformerV2(arch=dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4]), window_size=4)
    assert detect_version(v2.state_dict()) == 'v2'
    torch.save({'state_dict': v2.state_dict()}, tmp_path / 'v2.pth')
    status, out, err = cli_main(capsys, str(tmp_path / 'v2.pth'), str(tmp_path / 'v2_out.pth'))
    assert status == 0, err
    assert out.splitlines()[:2] == ['version: Swin V2', 'layout: official']
    # Version-specific options are refused for the other version, with what to use instead.
    status, _, err = cli_main(capsys, str(tmp_path / 'v2.pth'), str(tmp_path / 'x.pth'), '--window-size', '12')
    assert status == 1 and 'Swin V1' in err and 'pretrained_window_size' in err
    status, _, err = cli_main(capsys, str(src_path), str(tmp_path / 'x.pth'), '--pretrained-window-size', '12')
    assert status == 1 and 'Swin V1' in err and '--window-size' in err
    status, _, err = cli_main(capsys, str(src_path), str(tmp_path / 'x.safetensors'))
    assert status == 1 and 'write a .pth' in err
    # A named layout is checked against the keys.
    status, _, err = cli_main(capsys, str(src_path), str(tmp_path / 'x.pth'), '--src-format', 'v1-hf')
    assert status == 1 and 'not in the v1-hf layout' in err and 'v1-timm' in err
    status, _, err = cli_main(capsys, str(src_path), str(tmp_path / 'x.pth'), '--src-format', 'timm')
    assert status == 1 and 'Swin V1' in err
    status, out, err = cli_main(capsys, str(src_path), str(tmp_path / 'x.pth'), '--src-format', 'v1-timm')
    assert status == 0 and 'layout: v1-timm' in out


def test_v1_file_in_the_v2_backbone_says_what_to_do(timm_converted, tmp_path):
    src, src_path, _, _ = timm_converted
    model = SwinTransformerV2(arch=ARCH, window_size=WINDOW)
    with pytest.raises(SwinV1Checkpoint, match=r"Swin V1 checkpoint .* mmdet / mmseg \(type='SwinTransformer'\) "
                                               r".*tools/convert_checkpoint\.py"):
        load_pretrained(model, str(src_path))
    hf_model(224).save_pretrained(tmp_path / 'hf', safe_serialization=True)
    with pytest.raises(SwinV1Checkpoint, match='Swin V1'):
        load_pretrained(model, str(tmp_path / 'hf'))


# ------------------------------------------------------------------------------------ refused inputs

def test_unknown_and_missing_keys_are_named(timm_converted):
    src = timm_converted[0]
    state = src.state_dict()
    with pytest.raises(CheckpointError, match=r'1 tensor\(s\) .* no place .*absolute_pos_embed'):
        convert_v1_state_dict({**state, 'absolute_pos_embed': torch.zeros(1, 3136, 16)})
    del state['layers.2.blocks.1.mlp.fc2.bias']
    with pytest.raises(CheckpointError, match=r'lacks 1 tensor\(s\) .*layers\.2\.blocks\.1\.mlp\.fc2\.bias'):
        convert_v1_state_dict(state)
    converted = convert_v1_state_dict(src.state_dict()).state_dict
    with pytest.raises(CheckpointError, match='already in the OpenMMLab layout'):
        convert_v1_state_dict({'backbone.' + k: v for k, v in converted.items()})


class _Payload:
    """Unpickling this writes a file: the kind of code a malicious checkpoint carries."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (exec, (f'open({self.target!r}, "w").write("pwned")',))


def test_pickled_payload_is_refused_and_never_runs(timm_converted, tmp_path, capsys):
    target = tmp_path / 'pwned.txt'
    official = official_from_timm(timm_converted[0].state_dict())
    torch.save({'model': official, 'extra': _Payload(str(target))}, tmp_path / 'swin_tiny_patch4_window7_224.pth')
    status, out, err = cli_main(capsys, str(tmp_path / 'swin_tiny_patch4_window7_224.pth'), str(tmp_path / 'o.pth'))
    assert status == 1 and out == '' and 'refusing to load' in err
    assert not target.exists() and not (tmp_path / 'o.pth').exists()
    # The payload is live: an unsafe load runs it (so the check above can fail).
    with open(tmp_path / 'swin_tiny_patch4_window7_224.pth', 'rb') as f:
        torch.load(f, weights_only=False)
    assert target.read_text() == 'pwned'
