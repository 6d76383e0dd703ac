"""timm ``swinv2_*``: official names, but each downsample starts the next stage and the head is ``head.fc``.

``layers.{i+1}.downsample.*`` <-> ``layers.{i}.downsample.*``; ``head.fc.*`` <-> ``head.*``.
"""
import re
from typing import Dict, Tuple

import torch

NAME = 'timm'
_DOWNSAMPLE = re.compile(r'^layers\.(\d+)\.downsample\.')


def matches(state_dict: Dict[str, torch.Tensor]) -> bool:
    """timm keys: CPB MLP under ``layers.*.attn``, downsample in stage 1 but none in stage 0."""
    has_cpb = any(k.startswith('layers.') and '.attn.cpb_mlp.' in k for k in state_dict)
    return (has_cpb and 'layers.1.downsample.reduction.weight' in state_dict
            and 'layers.0.downsample.reduction.weight' not in state_dict)


def to_official(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Move every downsample back to the end of the previous stage and rename the head."""
    return _move(state_dict, step=-1, head=('head.fc.', 'head.'))


def from_official(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Move every downsample to the start of the next stage and rename the head (the inverse of :func:`to_official`)."""
    return _move(state_dict, step=1, head=('head.', 'head.fc.'))


def _move(state_dict: Dict[str, torch.Tensor], step: int, head: Tuple[str, str]) -> Dict[str, torch.Tensor]:
    """``layers.{i}.downsample`` -> ``layers.{i + step}.downsample``; head prefix ``head[0]`` -> ``head[1]``."""
    out = {}
    for key, value in state_dict.items():
        match = _DOWNSAMPLE.match(key)
        if match:
            key = f'layers.{int(match.group(1)) + step}.downsample.' + key[match.end():]
        elif key.startswith(head[0]):
            key = head[1] + key[len(head[0]):]
        out[key] = value
    return out
