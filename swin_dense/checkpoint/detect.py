"""Which Swin version, and which layout, a state dict is in; and the layout a conversion reads it in."""
from types import ModuleType
from typing import Callable, Dict, Mapping, Optional

import torch

from .errors import CheckpointError, NotSwinV2Checkpoint, SwinV1Checkpoint
from .keys import short_keys
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
        f'{short_keys(list(state_dict), 5, empty="no keys at all")}. '
        'Swin V1 and other models cannot be loaded into SwinTransformerV2.')


def matching_layout(layouts: Mapping[str, ModuleType], state_dict: Dict[str, torch.Tensor]) -> Optional[str]:
    """The first layout (in the mapping's order) whose ``matches(state_dict)`` holds, or None."""
    return next((name for name, layout in layouts.items() if layout.matches(state_dict)), None)


def resolve_layout(state_dict: Dict[str, torch.Tensor], layout: str, layouts: Mapping[str, ModuleType],
                   detect: Callable[[Dict[str, torch.Tensor]], str], family: str) -> str:
    """The layout to convert ``state_dict`` from: ``detect(state_dict)`` for ``'auto'``, else ``layout``
    once checked against the keys.

    Args:
        layout: ``'auto'`` or a key of ``layouts``.
        layouts: name -> layout module (with ``matches``).
        detect: returns the matching layout's name or raises :class:`CheckpointError`.
        family: ``'SwinV2'`` or ``'Swin V1'``, for the messages.

    Raises:
        ValueError: ``layout`` is no known name.
        CheckpointError: the keys are not in the given layout (the message says what they look like).
    """
    if layout == 'auto':
        return detect(state_dict)
    if layout not in layouts:
        raise ValueError(f'unknown {family} layout {layout!r}; use auto or one of {sorted(layouts)}')
    if not layouts[layout].matches(state_dict):
        try:
            found = f'the {detect(state_dict)} layout'
        except CheckpointError as err:
            found = f'no {family} layout: {err}'
        raise CheckpointError(f'the checkpoint is not in the {layout} layout (its keys look like {found}); '
                              'give the right --src-format or auto')
    return layout
