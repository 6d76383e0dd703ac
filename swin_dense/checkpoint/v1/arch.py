"""The architecture of a Swin V1 checkpoint, read off its tensors (official key scheme)."""
from dataclasses import dataclass
from typing import Any, Dict, List

import torch

from ..common import block_depths
from ..errors import CheckpointError
from .resize import window_of_table

# The released Swin V1 archs (microsoft/Swin-Transformer configs/swin).
V1_ARCHS: Dict[str, Dict[str, Any]] = {
    'tiny': dict(embed_dims=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24]),
    'small': dict(embed_dims=96, depths=[2, 2, 18, 2], num_heads=[3, 6, 12, 24]),
    'base': dict(embed_dims=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32]),
    'large': dict(embed_dims=192, depths=[2, 2, 18, 2], num_heads=[6, 12, 24, 48]),
}
_TABLE = 'layers.{}.blocks.{}.attn.relative_position_bias_table'


@dataclass
class V1Arch:
    """Architecture of a Swin V1 backbone, as mmdet's / mmseg's ``SwinTransformer`` arguments name it."""

    embed_dims: int
    depths: List[int]
    num_heads: List[int]
    window_size: int
    patch_size: int
    in_channels: int
    mlp_ratio: float
    qkv_bias: bool

    @property
    def num_stages(self) -> int:
        """Number of stages."""
        return len(self.depths)

    def config(self) -> Dict[str, Any]:
        """Arguments of mmdet's / mmseg's ``SwinTransformer`` for this arch (defaults left out)."""
        config: Dict[str, Any] = dict(embed_dims=self.embed_dims, depths=list(self.depths),
                                      num_heads=list(self.num_heads), window_size=self.window_size)
        if self.patch_size != 4:
            config.update(patch_size=self.patch_size, strides=[self.patch_size] + [2] * (self.num_stages - 1))
        if self.mlp_ratio != 4:
            config['mlp_ratio'] = self.mlp_ratio
        if not self.qkv_bias:
            config['qkv_bias'] = False
        if self.in_channels != 3:
            config['in_channels'] = self.in_channels
        return config

    def describe(self) -> str:
        """One line, with the named arch (tiny/small/base/large) when it is one."""
        config = dict(embed_dims=self.embed_dims, depths=self.depths, num_heads=self.num_heads)
        name = next((n for n, a in V1_ARCHS.items() if a == config), None)
        extras = '' if self.qkv_bias else ', qkv_bias=False'
        return (f'embed_dims={self.embed_dims}, depths={self.depths}, num_heads={self.num_heads}, '
                f'window_size={self.window_size}, patch_size={self.patch_size}, mlp_ratio={self.mlp_ratio:g}{extras}'
                + (f' (Swin-{name[0].upper()})' if name else ''))


def infer_v1_arch(official: Dict[str, torch.Tensor]) -> V1Arch:
    """Read the architecture off a Swin V1 state dict in the official key scheme.

    Heads come from the bias tables' columns, the window from their (2W-1)^2 rows.

    Raises:
        CheckpointError: no patch embedding, stages with gaps, a stage without a bias table, or
            tables of different windows (mmdet/mmseg use one ``window_size`` for every stage).
    """
    proj = official.get('patch_embed.proj.weight')
    if proj is None or proj.dim() != 4:
        raise CheckpointError('the checkpoint has no patch embedding (patch_embed.proj.weight, a 4-D conv weight); '
                              'it is incomplete or no Swin V1 backbone')
    depths = block_depths(official)
    num_stages = max(depths, default=-1) + 1
    if num_stages == 0 or sorted(depths) != list(range(num_stages)):
        raise CheckpointError(f'the checkpoint has blocks in stages {sorted(depths)}; expected stages 0..n-1, '
                              'it is incomplete')
    heads, windows = [], {}
    for i in range(num_stages):
        first = official.get(_TABLE.format(i, 0))
        if first is None:
            raise CheckpointError(f'{_TABLE.format(i, 0)} is missing: the checkpoint is incomplete')
        heads.append(first.shape[1])
        for j in range(depths[i]):
            key = _TABLE.format(i, j)
            if key in official:
                windows[key] = window_of_table(official[key], key)
    if len(set(windows.values())) > 1:
        found = ', '.join(f'{k}: {w}' for k, w in list(windows.items()))
        raise CheckpointError(f'the bias tables are of different windows ({found}), but mmdet/mmseg SwinTransformer '
                              'uses one window_size in every stage: pass --window-size W to resize them all to W')
    fc1 = official.get('layers.0.blocks.0.mlp.fc1.weight')
    return V1Arch(embed_dims=proj.shape[0], depths=[depths[i] for i in range(num_stages)], num_heads=heads,
                  window_size=next(iter(windows.values())), patch_size=proj.shape[-1], in_channels=proj.shape[1],
                  mlp_ratio=fc1.shape[0] / fc1.shape[1] if fc1 is not None else 0.0,
                  qkv_bias='layers.0.blocks.0.attn.qkv.bias' in official)
