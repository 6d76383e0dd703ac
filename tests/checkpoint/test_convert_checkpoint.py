"""Checkpoints of every SwinV2 layout convert, load, and compute what the source library computes.

Each layout's source is a random model (all parameters randomised, norms and logit scales
included) built with its own library where it is installed (timm, HF transformers, mmpretrain), or
a state dict laid out by the documented key scheme (official, SimMIM). After conversion the
backbone's stage outputs must equal the source's features within 1e-5 and every source tensor must
be used. Sizes keep every stage map a window multiple or equal to the window, where all
implementations agree (notes 5.1, 5.12).
"""
import importlib.util
import json
import os
import subprocess
import sys
from typing import Dict, List, Sequence, Tuple
from unittest import mock

import pytest
import torch
import torch.nn as nn

from swin_dense import SwinTransformerV2
from swin_dense.checkpoint import (CheckpointError, convert_checkpoint, convert_state_dict, load_pretrained,
                                   read_checkpoint, to_official_state_dict)
from swin_dense.layers.position_bias import relative_coords_table, relative_position_index

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI = os.path.join(ROOT, 'tools', 'convert_checkpoint.py')
ARCH = dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4])
WINDOW = 4
SIZE = 128  # 32 * window: stage maps 32, 16, 8, 4 (the last one window-sized, unshifted everywhere)
ATOL = 1e-5


def randomize_(model: nn.Module, seed: int) -> nn.Module:
    """Give every parameter a random value, so that no mapping error can hide behind an init value.

    LayerNorms get weights around 1 and biases around 0, logit scales U(0.5, 5) (some above the
    clamp ln 100), matrices N(0, 1/fan_in), other vectors N(0, 0.5).
    """
    gen = torch.Generator().manual_seed(seed)
    norms = {id(p) for m in model.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters()}
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if name.endswith('logit_scale'):
                p.copy_(torch.rand(p.shape, generator=gen) * 4.5 + 0.5)
            elif id(p) in norms:
                p.copy_(noise * 0.5 + (1.0 if name.endswith('weight') else 0.0))
            elif p.dim() >= 2:
                p.copy_(noise / p[0].numel() ** 0.5)
            else:
                p.copy_(noise * 0.5)
    model.eval()  # mmpretrain's train() returns None, so do not chain
    return model


def ours(**kwargs) -> SwinTransformerV2:
    """A tiny backbone on the exact (eager) attention path."""
    kwargs = {'arch': ARCH, 'window_size': WINDOW, 'drop_path_rate': 0.0, 'attn_impl': 'eager', **kwargs}
    return SwinTransformerV2(**kwargs).eval()


def load(path: str, **kwargs) -> Tuple[SwinTransformerV2, Dict[str, List[str]]]:
    """A backbone with ``path`` loaded through init_cfg, and what load_pretrained reported."""
    model = ours(init_cfg=dict(type='Pretrained', checkpoint=str(path)), **kwargs)
    reports = []

    def spy(*args, **kw):
        reports.append(load_pretrained(*args, **kw))
        return reports[-1]

    with mock.patch('swin_dense.models.backbones.swinv2.load_pretrained', spy):
        model.init_weights()
    return model.eval(), reports[0]


def features(model: SwinTransformerV2, x: torch.Tensor) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
    """(stage outputs before the output norms, NHWC; outputs after them, NCHW)."""
    raw: List[torch.Tensor] = []
    hooks = [stage.register_forward_hook(lambda m, i, o: raw.append(o[0])) for stage in model.layers]
    with torch.no_grad():
        normed = list(model(x))
    for hook in hooks:
        hook.remove()
    return raw, normed


def assert_close(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    assert actual.shape == expected.shape, f'{what}: {tuple(actual.shape)} vs {tuple(expected.shape)}'
    err = (actual - expected).abs().max().item()
    assert err <= ATOL, f'{what}: max abs difference {err:.3g} > {ATOL}'


def images(size: int = SIZE, seed: int = 0) -> torch.Tensor:
    return torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """tools/convert_checkpoint.py in a fresh process (exit status, no traceback, nothing run on import)."""
    return subprocess.run([sys.executable, CLI, *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


def cli_main(capsys: pytest.CaptureFixture, *args: str) -> Tuple[int, str, str]:
    """tools/convert_checkpoint.py's main() in this process (saves a process start): (status, stdout, stderr)."""
    spec = importlib.util.spec_from_file_location('convert_checkpoint_cli', CLI)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    capsys.readouterr()
    status = module.main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def assert_all_used(state_dict: Dict[str, torch.Tensor], allowed_drops: Sequence[str] = ()) -> None:
    """Every source tensor lands in the backbone, except the named drop reasons (heads, buffers)."""
    conversion = convert_state_dict(state_dict)
    unexpected = {reason: keys for reason, keys in conversion.dropped.items()
                  if not any(word in reason for word in allowed_drops)}
    assert not unexpected, unexpected


def official_layout(model: SwinTransformerV2, trained_windows: Sequence[int],
                    pretrained_windows: Sequence[int] = (0, 0, 0, 0)) -> Dict[str, torch.Tensor]:
    """The state dict the official code would save for ``model`` (notes 3.9): window buffers, final ``norm``, head."""
    sd = to_official_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith(('norm0', 'norm1',
                                                                                                    'norm2'))})
    cpu = torch.device('cpu')
    for i, (depth, window) in enumerate(zip(model.depths, trained_windows)):
        p = pretrained_windows[i]
        for j in range(depth):
            prefix = f'layers.{i}.blocks.{j}.'
            sd[prefix + 'attn.relative_coords_table'] = relative_coords_table((window, window), (p, p), cpu)[None]
            sd[prefix + 'attn.relative_position_index'] = relative_position_index((window, window), cpu)
            if j % 2:
                sd[prefix + 'attn_mask'] = torch.zeros(4, window * window, window * window)
    sd['head.weight'], sd['head.bias'] = torch.randn(10, sd['norm.weight'].numel()), torch.randn(10)
    return sd


# ----------------------------------------------------------------------------------------------- layouts

def test_timm_through_the_cli(tmp_path):
    timm_v2 = pytest.importorskip('timm.models.swin_transformer_v2')
    src = randomize_(timm_v2.SwinTransformerV2(
        img_size=SIZE, patch_size=4, window_size=WINDOW, embed_dim=ARCH['embed_dims'], depths=ARCH['depths'],
        num_heads=ARCH['num_heads'], num_classes=10, drop_path_rate=0.0), seed=1)
    torch.save(src.state_dict(), tmp_path / 'timm.pth')
    result = run_cli(str(tmp_path / 'timm.pth'), str(tmp_path / 'out.safetensors'))
    assert result.returncode == 0, result.stderr
    assert 'layout: timm' in result.stdout
    assert "embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4]" in result.stdout
    total = len(src.state_dict())
    assert f'used {total - 2}/{total} source tensors' in result.stdout  # all but head.fc.{weight,bias}
    assert '2 classification head' in result.stdout
    assert_all_used(src.state_dict(), allowed_drops=['classification head'])

    model, report = load(tmp_path / 'out.safetensors')
    assert sorted(report['missing']) == [f'norm{i}.{p}' for i in range(3) for p in ('bias', 'weight')]
    assert report['unexpected'] == []
    x = images()
    raw, normed = features(model, x)
    with torch.no_grad():
        expected = src.forward_intermediates(x, norm=False, intermediates_only=True)  # NCHW, before any norm
        final = src.forward_features(x)  # NHWC, after the final norm
    for i, feat in enumerate(expected):
        assert_close(raw[i].permute(0, 3, 1, 2), feat, f'timm stage {i}')
    assert_close(normed[3].permute(0, 2, 3, 1), final, 'timm forward_features vs norm3 output')


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
    raw, normed = features(model, x)
    with torch.no_grad():
        embedded, dims = src.swinv2.embeddings(x)
        # Swinv2Model itself returns hidden states after each stage's patch merging; the encoder
        # can return them before it, which is what a backbone stage outputs.
        encoded = src.swinv2.encoder(embedded, dims, output_hidden_states=True,
                                     output_hidden_states_before_downsampling=True, return_dict=True)
        final = src.swinv2(x).last_hidden_state  # (B, L, C) after the final layernorm
    for i in range(4):
        assert_close(raw[i].permute(0, 3, 1, 2), encoded.reshaped_hidden_states[i + 1], f'HF stage {i}')
    assert_close(normed[3].flatten(2).transpose(1, 2), final, 'HF last_hidden_state vs norm3 output')


@pytest.mark.parametrize('size', [SIZE, 100])  # 100: maps 25, 13, 7, 4 (padding and odd merges)
def test_mmpretrain_classifier(tmp_path, size):
    mmp = pytest.importorskip('mmpretrain.models.backbones')
    src = randomize_(mmp.SwinTransformerV2(
        arch=dict(ARCH, extra_norm_every_n_blocks=0), img_size=SIZE, window_size=WINDOW, drop_path_rate=0.0,
        out_indices=(0, 1, 2, 3), pad_small_map=False), seed=3)
    state = {'backbone.' + k: v for k, v in src.state_dict().items()}
    state['head.fc.weight'], state['head.fc.bias'] = torch.randn(10, 128), torch.randn(10)
    torch.save({'state_dict': state, 'meta': {'epoch': 300}}, tmp_path / 'mmpretrain.pth')
    result = convert_checkpoint(str(tmp_path / 'mmpretrain.pth'), str(tmp_path / 'out.pth'))
    conversion = result.conversion
    assert conversion.layout == 'mmpretrain'
    assert set(conversion.dropped) == {'classification head', 'window buffers (rebuilt by the model for its window)'}
    assert result.meta['pretrained_window_size'] == [WINDOW] * 4  # read off the stored coordinate tables

    model, report = load(tmp_path / 'out.pth')
    assert report['missing'] == [] and report['unexpected'] == []  # mmpretrain has all four output norms
    x = images(size)
    _, normed = features(model, x)
    with torch.no_grad():
        expected = src(x)
    for i in range(4):
        assert_close(normed[i], expected[i], f'mmpretrain output {i} at {size}px')


def test_mmpretrain_extra_norms_are_refused():
    state = {'stages.0.blocks.0.attn.w_msa.cpb_mlp.0.weight': torch.zeros(512, 2),
             'stages.0.blocks.5.norm3.weight': torch.zeros(16)}
    with pytest.raises(CheckpointError, match='extra block norms'):
        convert_state_dict(state)


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
    (raw_src, normed_src), (raw, normed) = features(src, x), features(model, x)
    for i in range(4):
        assert_close(raw[i], raw_src[i], f'official stage {i}')
    assert_close(normed[0], normed_src[0], 'official final norm')


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
    (raw_src, normed_src), (raw, normed) = features(src, x), features(model, x)
    for i in range(4):
        assert_close(raw[i], raw_src[i], f'SimMIM stage {i}')
    assert_close(normed[3], normed_src[3], 'SimMIM final norm')


def test_early_cpb_variant_is_refused():
    """A coordinate table of the arXiv-v1 / SimMIM-era CPB (log2(1+|x|) on [-1, 1]) is not the released one."""
    src = ours(window_size=8)
    sd = official_layout(src, trained_windows=[8, 8, 8, 4])
    offsets = torch.arange(-7, 8, dtype=torch.float32) / 7
    early = torch.stack(torch.meshgrid(offsets, offsets, indexing='ij'), dim=-1)
    sd['layers.0.blocks.1.attn.relative_coords_table'] = (torch.sign(early) * torch.log2(early.abs() + 1))[None]
    sd['layers.0.blocks.0.attn.relative_coords_table'] = sd['layers.0.blocks.1.attn.relative_coords_table']
    with pytest.raises(CheckpointError, match='another CPB variant'):
        convert_state_dict(sd)


def test_round_trip_ours_official_ours():
    state = randomize_(ours(), seed=6).state_dict()
    official = to_official_state_dict(state)
    assert 'norm.weight' in official and 'norm3.weight' not in official
    back = convert_state_dict(official).state_dict
    assert back.keys() == state.keys()
    assert all(torch.equal(back[k], state[k]) for k in state)


def test_named_layout_is_checked_against_the_keys():
    official = to_official_state_dict(randomize_(ours(), seed=6).state_dict())
    assert convert_state_dict(official, 'official').layout == 'official'
    with pytest.raises(CheckpointError, match='not in the hf layout .*like the official layout.* --src-format'):
        convert_state_dict(official, 'hf')
    with pytest.raises(ValueError, match="unknown SwinV2 layout 'swin'; use auto or one of"):
        convert_state_dict(official, 'swin')


def test_round_trip_through_files(tmp_path):
    state = randomize_(ours(), seed=7).state_dict()
    torch.save({'state_dict': state}, tmp_path / 'ours.pth')
    convert_checkpoint(str(tmp_path / 'ours.pth'), str(tmp_path / 'official.pth'), dst_format='official')
    official, _ = read_checkpoint(str(tmp_path / 'official.pth'))
    assert 'norm.weight' in official
    convert_checkpoint(str(tmp_path / 'official.pth'), str(tmp_path / 'back.safetensors'))
    back, _ = read_checkpoint(str(tmp_path / 'back.safetensors'))
    assert back.keys() == state.keys() and all(torch.equal(back[k], state[k]) for k in state)


# ---------------------------------------------------------------------------------- pretrained window

def test_window_12_checkpoint_runs_at_window_16_and_24(tmp_path):
    arch = dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2])
    src = randomize_(ours(arch=arch, window_size=12), seed=8)
    torch.save({'model': official_layout(src, trained_windows=[12, 12, 12, 6])}, tmp_path / 'w12.pth')
    result = convert_checkpoint(str(tmp_path / 'w12.pth'), str(tmp_path / 'w12_converted.pth'))
    assert result.meta['pretrained_window_size'] == [12, 12, 12, 6]
    for window in (16, 24):
        model, report = load(tmp_path / 'w12_converted.pth', arch=arch, window_size=window, out_indices=(3,),
                             pretrained_window_size=[12, 12, 12, 6])
        assert report['missing'] == [] and report['unexpected'] == []
        assert len(report['loaded']) == len(model.state_dict())
        with torch.no_grad():
            out = model(torch.randn(1, 3, 1024, 1024))
        assert out[0].shape == (1, 128, 32, 32) and torch.isfinite(out[0]).all()


def _warnings(path, **kwargs) -> List[str]:
    with mock.patch('swin_dense.checkpoint.load.print_log') as log:
        load(path, **kwargs)
    return [call.args[0] for call in log.call_args_list if call.kwargs.get('level') == 30]


def test_pretrained_window_mismatch_warns(tmp_path):
    src = ours(window_size=12)
    torch.save({'model': official_layout(src, trained_windows=[12, 12, 12, 6])}, tmp_path / 'w12.pth')
    convert_checkpoint(str(tmp_path / 'w12.pth'), str(tmp_path / 'w12.safetensors'))
    assert read_checkpoint(str(tmp_path / 'w12.safetensors'))[1]['pretrained_window_size'] == [12, 12, 12, 6]

    warned = _warnings(tmp_path / 'w12.safetensors', window_size=16)  # pretrained_window_size left at 0
    assert len(warned) == 1 and 'Set pretrained_window_size=[12, 12, 12, 6]' in warned[0]
    assert _warnings(tmp_path / 'w12.safetensors', window_size=16, pretrained_window_size=[12, 12, 12, 6]) == []
    # The official file itself, unconverted: the stored coordinate tables tell the window.
    warned = _warnings(tmp_path / 'w12.pth', window_size=24, pretrained_window_size=12)
    assert len(warned) == 1 and '[12, 12, 12, 6]' in warned[0]


def test_pretrained_window_from_file_name_and_flag(tmp_path, capsys):
    state = ours().state_dict()  # no coordinate tables: only the name or the flag can tell
    name = tmp_path / 'swinv2_base_patch4_window12to16_192to256_22kto1k_ft.pth'
    torch.save({'state_dict': state}, name)
    result = convert_checkpoint(str(name), str(tmp_path / 'a.pth'))
    assert result.meta['pretrained_window_size'] == [12, 12, 12, 6]
    assert 'file name' in result.pretrained_window_source
    result = convert_checkpoint(str(name), str(tmp_path / 'b.pth'), pretrained_window_size=[16, 16, 16, 8])
    assert result.meta['pretrained_window_size'] == [16, 16, 16, 8]
    torch.save({'state_dict': state}, tmp_path / 'renamed.pth')
    result = convert_checkpoint(str(tmp_path / 'renamed.pth'), str(tmp_path / 'c.pth'))
    assert 'pretrained_window_size' not in result.meta
    assert any('--pretrained-window-size' in line for line in result.report('c.pth', 'backbone'))
    status, _, err = cli_main(capsys, str(name), str(tmp_path / 'd.pth'), '--pretrained-window-size', '8')
    assert status == 0, err
    assert read_checkpoint(str(tmp_path / 'd.pth'))[1]['pretrained_window_size'] == [8, 8, 8, 8]


# ------------------------------------------------------------------------------------ refused inputs

def test_non_swinv2_file_exits_with_a_message(tmp_path, capsys):
    torchvision = pytest.importorskip('torchvision')
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / 'resnet18.pth')
    status, out, err = cli_main(capsys, str(tmp_path / 'resnet18.pth'), str(tmp_path / 'out.pth'))
    assert status == 1 and out == ''
    assert err.startswith('error: cannot convert') and 'not a SwinV2 checkpoint' in err and 'conv1.weight' in err
    assert not (tmp_path / 'out.pth').exists()
    status, _, err = cli_main(capsys, str(tmp_path / 'missing.pth'), str(tmp_path / 'out.pth'))
    assert status == 1 and 'does not exist' in err


class _Payload:
    """Unpickling this writes a file: the kind of code a malicious checkpoint carries."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (exec, (f'open({self.target!r}, "w").write("pwned")',))


def test_pickled_payload_is_refused_and_never_runs(tmp_path):
    target = tmp_path / 'pwned.txt'
    torch.save({'model': ours().state_dict(), 'extra': _Payload(str(target))}, tmp_path / 'evil.pth')
    result = run_cli(str(tmp_path / 'evil.pth'), str(tmp_path / 'out.pth'))
    assert result.returncode != 0
    assert 'refusing to load' in result.stderr and 'Traceback' not in result.stderr
    assert not target.exists()
    # The payload is live: an unsafe load runs it (so the check above can fail).
    with open(tmp_path / 'evil.pth', 'rb') as f:
        torch.load(f, weights_only=False)
    assert target.read_text() == 'pwned'


def test_meta_survives_safetensors_and_pth(tmp_path):
    state = ours().state_dict()
    torch.save({'state_dict': state}, tmp_path / 'src.pth')
    for dst in ('x.pth', 'x.safetensors'):
        convert_checkpoint(str(tmp_path / 'src.pth'), str(tmp_path / dst), pretrained_window_size=[12])
        loaded, meta = read_checkpoint(str(tmp_path / dst))
        assert meta['pretrained_window_size'] == [12, 12, 12, 12] and meta['source_layout'] == 'official'
        assert meta['arch'] == ARCH and loaded.keys() == state.keys()
    # .pth output is a plain dict of tensors and JSON-like meta: loadable with weights_only=True.
    assert json.dumps(torch.load(tmp_path / 'x.pth', weights_only=True)['meta'])
