"""Which Swin version, and which SwinV2 layout, a state dict is in."""
from typing import Dict

import torch

from .common import key_sample, matching_layout
from .errors import NotSwinV2Checkpoint, SwinV1Checkpoint
from .layouts import LAYOUTS

SWIN_V1 = 'v1'
SWIN_V2 = 'v2'
# Parameters only SwinV2 has (its continuous position bias MLP under any name, its cosine attention scale).
_V2_ONLY = ('cpb_mlp', 'rpe_mlp', 'continuous_position_bias_mlp', 'logit_scale')


def detect_version(state_dict: Dict[str, torch.Tensor]) -> str:
    """``SWIN_V1`` for a Swin V1 state dict, else ``SWIN_V2`` (whose layout :func:`detect_layout` finds or refuses).

    V1: a ``relative_position_bias_table`` (its learned bias table) and none of SwinV2's
    ``cpb_mlp`` / ``rpe_mlp`` / ``continuous_position_bias_mlp`` / ``logit_scale``; any prefix or layout.
    """
    has_table = any(k.endswith('relative_position_bias_table') for k in state_dict)
    has_v2 = any(part in k for k in state_dict for part in _V2_ONLY)
    return SWIN_V1 if has_table and not has_v2 else SWIN_V2


def detect_layout(state_dict: Dict[str, torch.Tensor]) -> str:
    """Name of the SwinV2 layout (a key of ``LAYOUTS``) that ``state_dict`` is in.

    Raises:
        SwinV1Checkpoint: a Swin V1 state dict, with how to use it instead.
        NotSwinV2Checkpoint: when no layout matches, with a sample of the keys found.
    """
    name = matching_layout(LAYOUTS, state_dict)
    if name is not None:
        return name
    if detect_version(state_dict) == SWIN_V1:
        raise SwinV1Checkpoint(
            'this is a Swin V1 checkpoint (relative_position_bias_table, no cpb_mlp/logit_scale), not SwinV2: '
            'SwinTransformerV2 cannot use its weights. To compare with Swin V1, use the SwinTransformer backbone of '
            "mmdet / mmseg (type='SwinTransformer') and convert the file for it with "
            '`python tools/convert_checkpoint.py SRC DST.pth` (see docs/checkpoints.md, "Swin V1")')
    raise NotSwinV2Checkpoint(
        f'this is not a SwinV2 checkpoint in any known layout ({", ".join(LAYOUTS)}); its first keys are: '
        f'{key_sample(state_dict)}. '
        'Swin V1 and other models cannot be loaded into SwinTransformerV2.')
