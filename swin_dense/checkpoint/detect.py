"""Which source layout a SwinV2 state dict is in."""
from typing import Dict

import torch

from .errors import NotSwinV2Checkpoint
from .layouts import LAYOUTS


def detect_layout(state_dict: Dict[str, torch.Tensor]) -> str:
    """Name of the layout (a key of ``LAYOUTS``) that ``state_dict`` is in.

    Raises:
        NotSwinV2Checkpoint: when no layout matches, with a sample of the keys found.
    """
    for name, layout in LAYOUTS.items():
        if layout.matches(state_dict):
            return name
    sample = ', '.join(list(state_dict)[:5]) or 'no keys at all'
    raise NotSwinV2Checkpoint(
        f'this is not a SwinV2 checkpoint in any known layout ({", ".join(LAYOUTS)}); its first keys are: {sample}. '
        'Swin V1 and other models cannot be loaded into SwinTransformerV2.')
