"""mmpretrain ``SwinTransformerV2`` (``backbone.`` prefix stripped before, by ``convert_state_dict``).

::

    patch_embed.projection                        <-> patch_embed.proj
    stages.{i}.blocks.{j}.attn.w_msa.*            <-> layers.{i}.blocks.{j}.attn.*
    stages.{i}.blocks.{j}.ffn.layers.0.0          <-> layers.{i}.blocks.{j}.mlp.fc1
    stages.{i}.blocks.{j}.ffn.layers.1            <-> layers.{i}.blocks.{j}.mlp.fc2
    stages.{i}.blocks.{j}.norm{1,2}               <-> layers.{i}.blocks.{j}.norm{1,2}
    stages.{i}.blocks.{j}.norm3                   <-> layers.{i}.blocks.{j}.norm3   (the extra norms of
                                                                               ``extra_norm_every_n_blocks``)
    stages.{i+1}.downsample.{reduction,norm}      <-> layers.{i}.downsample.*   (mmpretrain merges at the START
                                                                               of the next stage)
    norm{last}                                    <-> norm (the last output norm is the final norm)
    norm{i}, i < last                             <-> norm{i} (its other per-output norms are ours already)

mmpretrain's merging gathers the 2x2 neighbours with ``nn.Unfold``, so the 4C input channels of
``reduction.weight`` (2C, 4C) are in unfold order, not the official one (``merging.py``, notes 3.6). Only
that weight is reordered; V2's norm comes after the reduction and has 2C channels in the same order
in both (reordering it, as the V1 converters do, would scramble it).
"""
import re
from typing import Callable, Dict, Sequence, Tuple

import torch

from ..merging import official_to_unfold, unfold_to_official

NAME = 'mmpretrain'
_STAGE = re.compile(r'^(?:stages|layers)\.(\d+)\.')
# (pattern, replacement) from mmpretrain to official names, and back; the downsample move and the
# final norm are handled apart.
_RENAMES = (
    (r'^patch_embed\.projection\.', 'patch_embed.proj.'),
    (r'^stages\.', 'layers.'),
    (r'\.attn\.w_msa\.', '.attn.'),
    (r'\.ffn\.layers\.0\.0\.', '.mlp.fc1.'),
    (r'\.ffn\.layers\.1\.', '.mlp.fc2.'),
)
_INVERSE_RENAMES = (
    (r'^patch_embed\.proj\.', 'patch_embed.projection.'),
    (r'^layers\.', 'stages.'),
    (r'\.attn\.', '.attn.w_msa.'),
    (r'\.mlp\.fc1\.', '.ffn.layers.0.0.'),
    (r'\.mlp\.fc2\.', '.ffn.layers.1.'),
)


def matches(state_dict: Dict[str, torch.Tensor]) -> bool:
    """mmpretrain keys: a CPB MLP under ``stages.*.attn.w_msa``."""
    return any(k.startswith('stages.') and '.attn.w_msa.cpb_mlp.' in k for k in state_dict)


def to_official(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Rename to official keys, move each downsample to the end of the previous stage, reorder its reduction.

    The extra block norms of the huge / giant archs (``stages.{i}.blocks.{j}.norm3``) keep their
    block-local name under ``layers.`` (the official-style name this package gives them).
    """
    final = f'norm{_num_stages(state_dict) - 1}.'
    return _convert(state_dict, ('stages', 'layers'), -1, unfold_to_official, (final, 'norm.'), _RENAMES)


def from_official(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The inverse of :func:`to_official`: mmpretrain keys, each downsample at the start of the next
    stage with its reduction in unfold order, the final ``norm`` as the last stage's output norm."""
    final = f'norm{_num_stages(state_dict) - 1}.'
    return _convert(state_dict, ('layers', 'stages'), 1, official_to_unfold, ('norm.', final), _INVERSE_RENAMES)


def _convert(state_dict: Dict[str, torch.Tensor], stages: Tuple[str, str], step: int,
             reorder: Callable[[torch.Tensor], torch.Tensor], final: Tuple[str, str],
             renames: Sequence[Tuple[str, str]]) -> Dict[str, torch.Tensor]:
    """One direction: ``{stages[0]}.{i}.downsample`` -> ``{stages[1]}.{i + step}.downsample`` with its
    reduction weight reordered, the prefix ``final[0]`` -> ``final[1]``, every other key through ``renames``."""
    downsample = re.compile(rf'^{stages[0]}\.(\d+)\.downsample\.')
    out = {}
    for key, value in state_dict.items():
        match = downsample.match(key)
        if match:
            key = f'{stages[1]}.{int(match.group(1)) + step}.downsample.' + key[match.end():]
            if key.endswith('.reduction.weight'):
                value = reorder(value)
        elif key.startswith(final[0]):
            key = final[1] + key[len(final[0]):]
        else:
            for pattern, replacement in renames:
                key = re.sub(pattern, replacement, key)
        out[key] = value
    return out


def _num_stages(state_dict: Dict[str, torch.Tensor]) -> int:
    """Stages, from ``stages.{i}.`` or ``layers.{i}.`` keys (mmpretrain and official number them alike)."""
    return 1 + max((int(m.group(1)) for m in map(_STAGE.match, state_dict) if m), default=-1)
