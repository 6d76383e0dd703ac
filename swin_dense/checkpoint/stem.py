"""What every Swin state dict (V1 or V2) tells about its architecture, and the key scheme that follows.

Both converters bring a source to the official microsoft/Swin-Transformer key scheme first
(``patch_embed.{proj,norm}``, ``layers.{i}.blocks.{j}.*``, ``layers.{i}.downsample`` at the end of
stage i, final ``norm``, ``head``); this module reads that scheme. The version-specific parts (heads,
attention keys) are :class:`~swin_dense.checkpoint.convert.Arch` (SwinV2) and
:class:`~swin_dense.checkpoint.v1.arch.V1Arch`.
"""
import re
from dataclasses import dataclass
from typing import Dict, List, Sequence, Set, Tuple

import torch

from .errors import CheckpointError

_BLOCK = re.compile(r'^layers\.(\d+)\.blocks\.(\d+)\.')
_DOWNSAMPLE_KEYS = ('reduction.weight', 'norm.weight', 'norm.bias')


@dataclass
class StemArch:
    """What a Swin V1 or V2 state dict tells about its architecture apart from attention specifics.

    Subclasses add the version's fields and say which official-scheme keys that architecture has
    (:meth:`official_keys`) and how to name it (:meth:`describe`).
    """

    embed_dims: int
    depths: List[int]
    num_heads: List[int]
    patch_size: int
    in_channels: int
    mlp_ratio: float
    qkv_bias: bool

    @property
    def num_stages(self) -> int:
        """Number of stages."""
        return len(self.depths)

    def official_keys(self) -> Tuple[Set[str], Set[str]]:
        """(required, optional) backbone keys of this architecture in the official scheme."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line for reports and messages."""
        raise NotImplementedError


def block_depths(official: Dict[str, torch.Tensor]) -> Dict[int, int]:
    """Stage -> number of blocks, read off ``layers.{i}.blocks.{j}.*`` keys of the official scheme."""
    depths: Dict[int, int] = {}
    for key in official:
        match = _BLOCK.match(key)
        if match:
            stage, block = int(match.group(1)), int(match.group(2))
            depths[stage] = max(depths.get(stage, 0), block + 1)
    return depths


def read_stem(official: Dict[str, torch.Tensor], model: str) -> Dict[str, object]:
    """The ``StemArch`` fields every Swin has, read off an official-scheme state dict.

    Args:
        official: state dict in the official key scheme.
        model: 'SwinV2' or 'Swin V1', for the messages.

    Returns:
        embed_dims, depths, patch_size, in_channels and mlp_ratio (``num_heads`` and ``qkv_bias``
        are read from version-specific keys by the caller).

    Raises:
        CheckpointError: no 4-D patch embedding, or blocks in stages with gaps.
    """
    proj = official.get('patch_embed.proj.weight')
    if proj is None or proj.dim() != 4:
        raise CheckpointError('the checkpoint has no patch embedding (patch_embed.proj.weight, a 4-D conv weight); '
                              f'it is incomplete or no {model} backbone')
    depths = block_depths(official)
    num_stages = max(depths, default=-1) + 1
    if num_stages == 0 or sorted(depths) != list(range(num_stages)):
        raise CheckpointError(f'the checkpoint has blocks in stages {sorted(depths)}; expected stages 0..n-1, '
                              'it is incomplete')
    fc1 = official.get('layers.0.blocks.0.mlp.fc1.weight')
    return dict(embed_dims=proj.shape[0], depths=[depths[i] for i in range(num_stages)], patch_size=proj.shape[-1],
                in_channels=proj.shape[1], mlp_ratio=fc1.shape[0] / fc1.shape[1] if fc1 is not None else 0.0)


def scheme_keys(depths: Sequence[int], block_keys: Sequence[str]) -> Set[str]:
    """Official-scheme keys of a Swin backbone without its final norm.

    Args:
        depths: blocks per stage.
        block_keys: the keys of one block below ``layers.{i}.blocks.{j}.`` (version-specific).

    Returns:
        the patch embedding, ``block_keys`` of every block, and the downsample at the end of every
        stage but the last.
    """
    keys = {f'patch_embed.{m}.{p}' for m in ('proj', 'norm') for p in ('weight', 'bias')}
    for i, depth in enumerate(depths):
        keys.update(f'layers.{i}.blocks.{j}.{name}' for j in range(depth) for name in block_keys)
        if i < len(depths) - 1:
            keys.update(f'layers.{i}.downsample.{name}' for name in _DOWNSAMPLE_KEYS)
    return keys
