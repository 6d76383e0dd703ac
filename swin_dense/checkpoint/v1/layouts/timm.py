"""timm ``swin_*`` (timm >= 0.9): official names, but each downsample starts the next stage; head ``head.fc``.

``layers.{i+1}.downsample.{norm,reduction}`` -> ``layers.{i}.downsample.*`` (timm's merging
concatenates the 2x2 neighbours in the official order, so only the key moves); ``head.fc.*`` ->
``head.*``. timm keeps ``relative_position_index`` and ``attn_mask`` out of its state dicts.
"""
from typing import Dict

import torch

from ...layouts.timm import to_official  # the same moves as timm's swinv2_*

NAME = 'v1-timm'

__all__ = ['NAME', 'matches', 'to_official']


def matches(state_dict: Dict[str, torch.Tensor]) -> bool:
    """timm V1 keys: bias tables under ``layers.*.attn``, a downsample in stage 1 but none in stage 0."""
    has_table = any(k.startswith('layers.') and k.endswith('.attn.relative_position_bias_table') for k in state_dict)
    return (has_table and 'layers.1.downsample.reduction.weight' in state_dict
            and 'layers.0.downsample.reduction.weight' not in state_dict)
