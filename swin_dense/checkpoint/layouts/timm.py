"""timm ``swinv2_*``: official names, but each downsample starts the next stage and the head is ``head.fc``.

``layers.{i+1}.downsample.*`` -> ``layers.{i}.downsample.*``; ``head.fc.*`` -> ``head.*``.
"""
import re
from typing import Dict

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
    out = {}
    for key, value in state_dict.items():
        match = _DOWNSAMPLE.match(key)
        if match:
            key = f'layers.{int(match.group(1)) - 1}.downsample.' + key[match.end():]
        elif key.startswith('head.fc.'):
            key = 'head.' + key[len('head.fc.'):]
        out[key] = value
    return out
