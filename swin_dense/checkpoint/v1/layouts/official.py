"""microsoft/Swin-Transformer Swin V1 (``{'model': ...}``, e.g. ``swin_tiny_patch4_window7_224.pth``): the reference.

``layers.{i}.blocks.{j}.attn.{qkv,relative_position_bias_table,relative_position_index,proj}``,
``layers.{i}.blocks.{j}.attn_mask`` (shifted blocks), ``layers.{i}.downsample`` at the end of
stage i, final ``norm``, ``head``. timm before 0.9 saved the same keys.
"""
from typing import Dict

import torch

from ...layouts.official import to_official  # identity: it is the reference scheme

NAME = 'v1-official'

__all__ = ['NAME', 'matches', 'to_official']


def matches(state_dict: Dict[str, torch.Tensor]) -> bool:
    """Official V1 keys: bias tables under ``layers.*.attn`` and no downsample that starts a stage (timm)."""
    has_table = any(k.startswith('layers.') and k.endswith('.attn.relative_position_bias_table') for k in state_dict)
    starts_a_stage = ('layers.1.downsample.reduction.weight' in state_dict
                      and 'layers.0.downsample.reduction.weight' not in state_dict)
    return has_table and not starts_a_stage
