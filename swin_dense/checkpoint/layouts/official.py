"""microsoft/Swin-Transformer SwinV2 (``{'model': ...}``): the reference key scheme.

``layers.{i}.blocks.{j}.attn.{qkv,q_bias,v_bias,logit_scale,cpb_mlp,proj}``, ``layers.{i}.downsample``
at the end of stage i, final ``norm``, ``head``. The official code has no SwinV2-H / G extra norms; this
package names them ``layers.{i}.blocks.{j}.norm3`` (beside the block's ``norm1`` / ``norm2``, as mmpretrain
does), so they pass through every official-scheme step unchanged.
"""
from typing import Dict

import torch

NAME = 'official'


def matches(state_dict: Dict[str, torch.Tensor]) -> bool:
    """Official keys: CPB MLP under ``layers.*.attn`` and no downsample that starts a stage."""
    has_cpb = any(k.startswith('layers.') and '.attn.cpb_mlp.' in k for k in state_dict)
    return has_cpb and 'layers.0.downsample.reduction.weight' in state_dict


def to_official(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Identity (a shallow copy): this is the reference scheme, in both directions."""
    return dict(state_dict)


from_official = to_official
