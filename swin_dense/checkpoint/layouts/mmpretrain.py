"""mmpretrain ``SwinTransformerV2`` (``backbone.`` prefix stripped before, by ``convert_state_dict``).

::

    patch_embed.projection                        -> patch_embed.proj
    stages.{i}.blocks.{j}.attn.w_msa.*            -> layers.{i}.blocks.{j}.attn.*
    stages.{i}.blocks.{j}.ffn.layers.0.0          -> layers.{i}.blocks.{j}.mlp.fc1
    stages.{i}.blocks.{j}.ffn.layers.1            -> layers.{i}.blocks.{j}.mlp.fc2
    stages.{i}.blocks.{j}.norm{1,2}               -> layers.{i}.blocks.{j}.norm{1,2}
    stages.{i+1}.downsample.{reduction,norm}      -> layers.{i}.downsample.*   (mmpretrain merges at the START
                                                                               of the next stage)
    norm{i}                                       -> norm{i} (its per-output norms are ours already)

mmpretrain's merging gathers the 2x2 neighbours with ``nn.Unfold``, so the 4C input channels of
``reduction.weight`` (2C, 4C) are in unfold order, not the official one (``merging.py``, notes 3.6). Only
that weight is reordered; V2's norm comes after the reduction and has 2C channels in the same order
in both (reordering it, as the V1 converters do, would scramble it).
"""
import re
from typing import Dict

import torch

from ..errors import CheckpointError
from ..merging import unfold_to_official

NAME = 'mmpretrain'
_DOWNSAMPLE = re.compile(r'^stages\.(\d+)\.downsample\.')
_EXTRA_NORM = re.compile(r'^stages\.\d+\.blocks\.\d+\.norm3\.')
_RENAMES = (
    (r'^patch_embed\.projection\.', 'patch_embed.proj.'),
    (r'^stages\.', 'layers.'),
    (r'\.attn\.w_msa\.', '.attn.'),
    (r'\.ffn\.layers\.0\.0\.', '.mlp.fc1.'),
    (r'\.ffn\.layers\.1\.', '.mlp.fc2.'),
)


def matches(state_dict: Dict[str, torch.Tensor]) -> bool:
    """mmpretrain keys: a CPB MLP under ``stages.*.attn.w_msa``."""
    return any(k.startswith('stages.') and '.attn.w_msa.cpb_mlp.' in k for k in state_dict)


def to_official(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Rename to official keys, move each downsample to the end of the previous stage, reorder its reduction.

    Raises:
        CheckpointError: extra per-block norms (``extra_norm_every_n_blocks`` of the huge/giant
            archs), which SwinTransformerV2 does not implement.
    """
    extra = sorted(k for k in state_dict if _EXTRA_NORM.match(k))
    if extra:
        raise CheckpointError(
            f'this mmpretrain SwinV2 has extra block norms ({extra[0]}, ... {len(extra)} tensors, from '
            'extra_norm_every_n_blocks > 0); SwinTransformerV2 does not implement them and no public checkpoint '
            'confirms where they go, so the weights cannot be used. Use a checkpoint without extra norms.')
    out = {}
    for key, value in state_dict.items():
        match = _DOWNSAMPLE.match(key)
        if match:
            key = f'layers.{int(match.group(1)) - 1}.downsample.' + key[match.end():]
            if key.endswith('.reduction.weight'):
                value = unfold_to_official(value)
        else:
            for pattern, replacement in _RENAMES:
                key = re.sub(pattern, replacement, key)
        out[key] = value
    return out
