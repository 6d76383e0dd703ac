"""The same weights for every implementation: one seeded random state dict, written into each peer's layout.

The state dict is in this package's backbone layout (the official SwinV2 names, with the per-stage
output norms ``norm0..norm{n-1}``; the official final ``norm`` is ``norm{n-1}``). It is written into
timm's and mmpretrain's layouts, loaded there strictly, and read back through
``swin_dense.checkpoint.to_backbone_state_dict`` with layout 'timm' / 'mmpretrain', which must give
the original tensors bit for bit (:func:`check_round_trip`).

The weights are random but non-degenerate: LayerNorm weights ``1 + 0.2 N(0,1)`` (the res-post-norms
are *not* zero as after a from-scratch init, which would make every block an identity), biases, q/v
biases and logit scales randomised, so the comparison exercises every parameter.
"""
import math
import re
from typing import Dict, List

import torch
import torch.nn as nn

from ..checkpoint import from_official_state_dict, to_backbone_state_dict, to_official_state_dict

PEER_LAYOUTS = ('timm', 'mmpretrain')
_STAGE = re.compile(r'^layers\.(\d+)\.')


def random_state_dict(model: nn.Module, seed: int) -> Dict[str, torch.Tensor]:
    """Seeded, non-degenerate random weights in swin_dense's keys."""
    gen = torch.Generator().manual_seed(seed)

    def randn(shape, std, mean=0.0):
        return torch.randn(shape, generator=gen) * std + mean

    out = {}
    for key, value in model.state_dict().items():
        shape = value.shape
        if key.endswith('logit_scale'):
            out[key] = randn(shape, 0.3, math.log(10.0))
        elif '.cpb_mlp.' in key:
            out[key] = randn(shape, 0.5 if key.endswith('0.weight') or key.endswith('0.bias') else 0.05)
        elif key.endswith(('q_bias', 'v_bias')):
            out[key] = randn(shape, 0.1)
        elif value.dim() == 1 and key.endswith('weight'):  # LayerNorm weights
            out[key] = randn(shape, 0.2, 1.0)
        elif key.endswith('bias'):
            out[key] = randn(shape, 0.05)
        else:  # Linear / conv weights
            fan_in = value[0].numel()
            out[key] = randn(shape, 1.0 / math.sqrt(fan_in))
    return out


def num_stages_of(state_dict: Dict[str, torch.Tensor]) -> int:
    """Number of stages of a backbone-layout state dict (from its ``layers.{i}.`` keys)."""
    return 1 + max((int(m.group(1)) for m in map(_STAGE.match, state_dict) if m), default=-1)


def peer_state_dict(state_dict: Dict[str, torch.Tensor], peer_name: str) -> Dict[str, torch.Tensor]:
    """The weights of ``state_dict`` (backbone layout, see the module doc) in a peer's own layout,
    through the converters' two-way layouts (``swin_dense.checkpoint.from_official_state_dict``).

    For timm, the output norms it lacks (:func:`timm_extra_norms`) are left out.

    Raises:
        ValueError: ``peer_name`` is not one of :data:`PEER_LAYOUTS`.
    """
    if peer_name not in PEER_LAYOUTS:
        raise ValueError(f'no peer layout {peer_name!r}; the peers are {PEER_LAYOUTS}')
    official = to_official_state_dict(state_dict)
    if peer_name == 'timm':
        official = {k: v for k, v in official.items() if k not in timm_extra_norms(state_dict)}
    return from_official_state_dict(official, peer_name)


def timm_extra_norms(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The per-stage output norms ``norm0..norm{n-2}`` that timm has no place for."""
    extra = tuple(f'norm{i}.' for i in range(num_stages_of(state_dict) - 1))
    return {k: v for k, v in state_dict.items() if k.startswith(extra)}


def differences(a: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor]) -> List[str]:
    """What keeps ``b`` from being ``a`` bit for bit: missing, unexpected and differing keys."""
    problems = [f'missing {k}' for k in sorted(set(a) - set(b))]
    problems += [f'unexpected {k}' for k in sorted(set(b) - set(a))]
    problems += [f'differs {k}' for k in sorted(set(a) & set(b))
                 if a[k].shape != b[k].shape or not torch.equal(a[k], b[k].to(a[k].dtype))]
    return problems


def check_round_trip(peer_model_state: Dict[str, torch.Tensor], peer_name: str,
                     expected: Dict[str, torch.Tensor], num_stages: int) -> None:
    """The peer model's state dict, read back into backbone keys, must be ``expected`` bit for bit.

    Raises:
        RuntimeError: naming the first differences.
    """
    back, _ = to_backbone_state_dict(peer_model_state, peer_name, num_stages=num_stages)
    problems = differences(expected, back)
    if problems:
        raise RuntimeError(f'{peer_name} -> swin_dense conversion does not round-trip: {problems[:5]}')
