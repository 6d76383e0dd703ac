"""Shared by tests/checkpoint (SwinV2) and tests/checkpoint/layouts: tiny random models, the backbone's
loading and features, the official and the layout state dicts, and tools/convert_checkpoint.py.

Each layout's source is a random model (all parameters randomised, norms and logit scales
included) built with its own library where it is installed (timm, HF transformers, mmpretrain), or
a state dict laid out by the documented key scheme (official, SimMIM). After conversion the
backbone's stage outputs must compute what the source computes, as tests/numerics.py states (the
same math in float64, our fp32 within 3e-5 of the output's magnitude of the source's float64
result), and every source tensor must be used. Sizes keep every stage map a window multiple or equal to the window, where all
implementations agree (notes 5.1, 5.12).
"""
import importlib.util
import os
import subprocess
import sys
from typing import Dict, List, Sequence, Tuple
from unittest import mock

import pytest
import torch
import torch.nn as nn

from swin_dense import SwinTransformerV2
from swin_dense.checkpoint import convert_state_dict, to_official_state_dict
from swin_dense.layers.position_bias import relative_coords_table, relative_position_index
from swin_dense.models.backbones.pretrained import load_pretrained

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI = os.path.join(ROOT, 'tools', 'convert_checkpoint.py')
ARCH = dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4])
WINDOW = 4
SIZE = 128  # 32 * window: stage maps 32, 16, 8, 4 (the last one window-sized, unshifted everywhere)
CPU = torch.device('cpu')


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


def in_fp32_and_fp64(model: nn.Module, x: torch.Tensor) -> Tuple[Tuple[List[torch.Tensor], List[torch.Tensor]],
                                                                     Tuple[List[torch.Tensor], List[torch.Tensor]]]:
    """:func:`features` in fp32, then in float64 (``model`` is converted in place)."""
    return features(model, x), features(model.double(), x.double())


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


def random_official(head: bool = True, output_norms: bool = True, coords: bool = True, masks: bool = True,
                    mim: bool = True, seed: int = 0) -> Dict[str, torch.Tensor]:
    """A random official-scheme state dict of a tiny SwinV2 (ARCH, window WINDOW), with the optional parts.

    Args:
        head: a 10-class ``head.{weight,bias}``.
        output_norms: this backbone's output norms ``norm0..2`` (``to_official_state_dict`` keeps them).
        coords: every block's ``attn.relative_coords_table`` (1, 2W-1, 2W-1, 2) and
            ``attn.relative_position_index`` (W^2, W^2), as the official code computes them.
        masks: ``attn_mask`` of every shifted block.
        mim: SimMIM's ``mask_token`` and a ``decoder``.
    """
    gen = torch.Generator().manual_seed(seed)
    backbone = SwinTransformerV2(arch=ARCH, window_size=WINDOW).state_dict()
    sd = to_official_state_dict({k: torch.randn(v.shape, generator=gen) for k, v in backbone.items()})
    if not output_norms:
        sd = {k: v for k, v in sd.items() if not k.startswith(('norm0.', 'norm1.', 'norm2.'))}
    for i, depth in enumerate(ARCH['depths']):
        for j in range(depth):
            prefix = f'layers.{i}.blocks.{j}.'
            if coords:
                sd[prefix + 'attn.relative_coords_table'] = relative_coords_table((WINDOW, WINDOW), (0, 0), CPU)[None]
                sd[prefix + 'attn.relative_position_index'] = relative_position_index((WINDOW, WINDOW), CPU)
            if masks and j % 2:
                sd[prefix + 'attn_mask'] = torch.randn(4, WINDOW ** 2, WINDOW ** 2, generator=gen)
    if head:
        sd['head.weight'], sd['head.bias'] = torch.randn(10, 128, generator=gen), torch.randn(10, generator=gen)
    if mim:
        sd['mask_token'] = torch.randn(1, 1, ARCH['embed_dims'], generator=gen)
        sd['decoder.0.weight'] = torch.randn(48, 128, 1, 1, generator=gen)
        sd['decoder.0.bias'] = torch.randn(48, generator=gen)
    return sd


def assert_same(actual: Dict[str, torch.Tensor], expected: Dict[str, torch.Tensor], what: str) -> None:
    """Same keys, and every tensor equal in shape, dtype and value."""
    assert actual.keys() == expected.keys(), f'{what}: only in result {sorted(set(actual) - set(expected))[:5]}, ' \
                                             f'only expected {sorted(set(expected) - set(actual))[:5]}'
    for key, value in expected.items():
        assert actual[key].dtype == value.dtype and torch.equal(actual[key], value), f'{what}: {key} differs'


class Payload:
    """Unpickling this writes a file: the kind of code a malicious checkpoint carries."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (exec, (f'open({self.target!r}, "w").write("pwned")',))
