"""The architecture of a Swin V1 checkpoint, read off its tensors (official key scheme)."""
from dataclasses import dataclass
from typing import Any, Dict, Set, Tuple

import torch

from ...arch import arch_name
from ..errors import CheckpointError
from ..stem import StemArch, read_stem, scheme_keys
from .resize import window_of_table

TABLE = 'layers.{}.blocks.{}.attn.relative_position_bias_table'
_BLOCK_KEYS = ('norm1.weight', 'norm1.bias', 'attn.relative_position_bias_table', 'attn.qkv.weight',
               'attn.proj.weight', 'attn.proj.bias', 'norm2.weight', 'norm2.bias', 'mlp.fc1.weight', 'mlp.fc1.bias',
               'mlp.fc2.weight', 'mlp.fc2.bias')


@dataclass
class V1Arch(StemArch):
    """Architecture of a Swin V1 backbone, as mmdet's / mmseg's ``SwinTransformer`` arguments name it."""

    window_size: int

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
        name = arch_name(self.embed_dims, self.depths, self.num_heads)
        extras = '' if self.qkv_bias else ', qkv_bias=False'
        return (f'embed_dims={self.embed_dims}, depths={self.depths}, num_heads={self.num_heads}, '
                f'window_size={self.window_size}, patch_size={self.patch_size}, mlp_ratio={self.mlp_ratio:g}{extras}'
                + (f' (Swin-{name[0].upper()})' if name else ''))

    def official_keys(self) -> Tuple[Set[str], Set[str]]:
        """(required, optional) official-scheme keys: every backbone weight and the final ``norm``; nothing optional."""
        block_keys = _BLOCK_KEYS + (('attn.qkv.bias',) if self.qkv_bias else ())
        return scheme_keys(self.depths, block_keys) | {'norm.weight', 'norm.bias'}, set()


def infer_v1_arch(official: Dict[str, torch.Tensor]) -> V1Arch:
    """Read the architecture off a Swin V1 state dict in the official key scheme.

    Heads come from the bias tables' columns, the window from their (2W-1)^2 rows.

    Raises:
        CheckpointError: no patch embedding, stages with gaps, a stage without a bias table, or
            tables of different windows (mmdet/mmseg use one ``window_size`` for every stage).
    """
    stem = read_stem(official, 'Swin V1')
    heads, windows = [], {}
    for i, depth in enumerate(stem['depths']):
        first = official.get(TABLE.format(i, 0))
        if first is None:
            raise CheckpointError(f'{TABLE.format(i, 0)} is missing: the checkpoint is incomplete')
        heads.append(first.shape[1])
        for j in range(depth):
            key = TABLE.format(i, j)
            if key in official:
                windows[key] = window_of_table(official[key], key)
    if len(set(windows.values())) > 1:
        found = ', '.join(f'{k}: {w}' for k, w in list(windows.items()))
        raise CheckpointError(f'the bias tables are of different windows ({found}), but mmdet/mmseg SwinTransformer '
                              'uses one window_size in every stage: pass --window-size W to resize them all to W')
    return V1Arch(**stem, num_heads=heads, qkv_bias='layers.0.blocks.0.attn.qkv.bias' in official,
                  window_size=next(iter(windows.values())))
