"""The destination: the key layout of mmdet's and mmseg's Swin V1 ``SwinTransformer`` (the same in both).

Official V1 scheme -> OpenMMLab (``convert_weights=False``)::

    patch_embed.proj                    -> patch_embed.projection
    patch_embed.norm                    -> patch_embed.norm
    layers.{i}.blocks.{j}.norm{1,2}     -> stages.{i}.blocks.{j}.norm{1,2}
    layers.{i}.blocks.{j}.attn.*        -> stages.{i}.blocks.{j}.attn.w_msa.*  (qkv, proj, relative_position_bias_table)
    layers.{i}.blocks.{j}.mlp.fc1       -> stages.{i}.blocks.{j}.ffn.layers.0.0
    layers.{i}.blocks.{j}.mlp.fc2       -> stages.{i}.blocks.{j}.ffn.layers.1
    layers.{i}.downsample.norm          -> stages.{i}.downsample.norm       (4C channels reordered)
    layers.{i}.downsample.reduction     -> stages.{i}.downsample.reduction  (4C input channels reordered)
    norm                                -> norm{last}  (the last stage's output norm)

OpenMMLab's ``PatchMerging`` gathers the 2x2 neighbours with ``nn.Unfold`` and, in V1, normalises
the 4C features before reducing them, so both the norm (4C,) and the reduction's input (2C, 4C)
go from official to unfold channel order (``checkpoint/merging.py``). The backbone has an output
norm ``norm{i}`` per out index; a classification checkpoint has only the final one.
"""
import re
from typing import Dict, List, Tuple

import torch

from ..merging import official_to_unfold
from .arch import V1Arch

_RENAMES = (
    (r'^patch_embed\.proj\.', 'patch_embed.projection.'),
    (r'^layers\.', 'stages.'),
    (r'\.attn\.', '.attn.w_msa.'),
    (r'\.mlp\.fc1\.', '.ffn.layers.0.0.'),
    (r'\.mlp\.fc2\.', '.ffn.layers.1.'),
)
_MERGING = re.compile(r'^layers\.\d+\.downsample\.(norm\.weight|norm\.bias|reduction\.weight)$')


def to_mmdet(official: Dict[str, torch.Tensor], arch: V1Arch) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """Official V1 backbone keys -> mmdet/mmseg ``SwinTransformer`` keys, with all output norms.

    Args:
        official: exactly ``arch.official_keys()`` (heads and buffers dropped, keys checked before).
        arch: the architecture.

    Returns:
        (state dict for ``SwinTransformer(out_indices=range(num_stages))``, keys added): the output
        norms ``norm0..norm{last-1}`` have no source in a classification checkpoint and are added as
        LayerNorm(1, 0), which is how mmdet/mmseg initialise them, so that the result loads strictly.
    """
    last = arch.num_stages - 1
    out: Dict[str, torch.Tensor] = {}
    for key, value in official.items():
        if key.startswith('norm.'):
            out[f'norm{last}.' + key[len('norm.'):]] = value
            continue
        if _MERGING.match(key):
            value = official_to_unfold(value)
        for pattern, replacement in _RENAMES:
            key = re.sub(pattern, replacement, key)
        out[key] = value
    added = []
    for i in range(last):
        channels = arch.embed_dims * 2 ** i
        dtype = official['norm.weight'].dtype
        out[f'norm{i}.weight'], out[f'norm{i}.bias'] = torch.ones(channels, dtype=dtype), torch.zeros(channels,
                                                                                                      dtype=dtype)
        added += [f'norm{i}.weight', f'norm{i}.bias']
    return out, added
