"""Which Swin V1 layout a state dict is in."""
from typing import Dict

import torch

from ..detect import matching_layout
from ..errors import CheckpointError
from ..keys import short_keys
from .layouts import V1_LAYOUTS

_OPENMMLAB_TABLE = '.attn.w_msa.relative_position_bias_table'


def detect_v1_layout(state_dict: Dict[str, torch.Tensor]) -> str:
    """Name of the Swin V1 layout (a key of ``V1_LAYOUTS``) that ``state_dict`` is in.

    Raises:
        CheckpointError: no layout matches (the message says if the file is already in the
            OpenMMLab layout), with a sample of the keys found.
    """
    name = matching_layout(V1_LAYOUTS, state_dict)
    if name is not None:
        return name
    if any(k.startswith('stages.') and k.endswith(_OPENMMLAB_TABLE) for k in state_dict):
        raise CheckpointError(
            'this Swin V1 checkpoint is already in the OpenMMLab layout (stages.*.attn.w_msa.*): a file written by '
            'this converter or an mmdet/mmseg model loads into their SwinTransformer as it is (convert_weights=False; '
            "mmdet takes only keys prefixed 'backbone.'). mmpretrain's V1 layout (downsample at the start of a stage) "
            'is not converted here: convert the official, HF or timm release of the same weights instead')
    raise CheckpointError(
        f'this Swin V1 checkpoint is in no known V1 layout ({", ".join(V1_LAYOUTS)}); its first keys are: '
        f'{short_keys(list(state_dict), 5, empty="no keys at all")}. '
        'Convert a release in one of those layouts (official .pth, HF folder, timm file)')
