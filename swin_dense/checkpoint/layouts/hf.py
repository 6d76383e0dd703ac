"""Hugging Face transformers ``Swinv2*`` (``Swinv2Model``, ``Swinv2ForImageClassification``, ...).

Keys have a ``swinv2.`` prefix (task models) or none (``Swinv2Model``, ``Swinv2Backbone``); both
directions (:func:`from_official` writes the task models' form, ``swinv2.`` and ``classifier``)::

    embeddings.patch_embeddings.projection       -> patch_embed.proj
    embeddings.norm                              -> patch_embed.norm
    embeddings.mask_token                        -> mask_token (masked-image-modeling only, dropped)
    encoder.layers.{i}.blocks.{j}.
        layernorm_before                         -> norm1   (HF's name; it is the POST-attention norm)
        attention.self.{query,key,value}.weight  -> attn.qkv.weight (3C, C), rows q, k, v (split back: (C, C) each)
        attention.self.query.bias                -> attn.q_bias   (the key has no bias)
        attention.self.value.bias                -> attn.v_bias
        attention.self.logit_scale               -> attn.logit_scale
        attention.self.continuous_position_bias_mlp.{0,2} -> attn.cpb_mlp.{0,2}
        attention.output.dense                   -> attn.proj
        layernorm_after                          -> norm2
        intermediate.dense                       -> mlp.fc1
        output.dense                             -> mlp.fc2
    encoder.layers.{i}.downsample.{reduction,norm} -> layers.{i}.downsample.*  (end of stage i, as official;
                                                   ``Swinv2Stage`` merges after its blocks, reduction then norm)
    layernorm                                    -> norm
    classifier                                   -> head
"""
import re
from typing import Dict, Sequence, Tuple

import torch

from ..errors import CheckpointError

NAME = 'hf'
_PREFIX = 'swinv2.'
_RENAMES = (
    (r'^embeddings\.patch_embeddings\.projection\.', 'patch_embed.proj.'),
    (r'^embeddings\.norm\.', 'patch_embed.norm.'),
    (r'^embeddings\.mask_token$', 'mask_token'),
    (r'^encoder\.layers\.', 'layers.'),
    (r'\.layernorm_before\.', '.norm1.'),
    (r'\.layernorm_after\.', '.norm2.'),
    (r'\.attention\.self\.query\.bias$', '.attn.q_bias'),
    (r'\.attention\.self\.value\.bias$', '.attn.v_bias'),
    (r'\.attention\.self\.continuous_position_bias_mlp\.', '.attn.cpb_mlp.'),
    (r'\.attention\.self\.(logit_scale|relative_coords_table|relative_position_index|relative_position_bias_table)$',
     r'.attn.\1'),
    (r'\.attention\.output\.dense\.', '.attn.proj.'),
    (r'\.intermediate\.dense\.', '.mlp.fc1.'),
    (r'\.output\.dense\.', '.mlp.fc2.'),
    (r'^layernorm\.', 'norm.'),
    (r'^classifier\.', 'head.'),
)
# Official -> HF V2 names (the stacked qkv weight apart).
_INVERSE_RENAMES = (
    (r'^patch_embed\.proj\.', 'embeddings.patch_embeddings.projection.'),
    (r'^patch_embed\.norm\.', 'embeddings.norm.'),
    (r'^mask_token$', 'embeddings.mask_token'),
    (r'^layers\.', 'encoder.layers.'),
    (r'\.norm1\.', '.layernorm_before.'),
    (r'\.norm2\.', '.layernorm_after.'),
    (r'\.attn\.q_bias$', '.attention.self.query.bias'),
    (r'\.attn\.v_bias$', '.attention.self.value.bias'),
    (r'\.attn\.cpb_mlp\.', '.attention.self.continuous_position_bias_mlp.'),
    (r'\.attn\.(logit_scale|relative_coords_table|relative_position_index)$', r'.attention.self.\1'),
    (r'\.attn\.proj\.', '.attention.output.dense.'),
    (r'\.mlp\.fc1\.', '.intermediate.dense.'),
    (r'\.mlp\.fc2\.', '.output.dense.'),
    (r'^norm\.', 'layernorm.'),
    (r'^head\.', 'classifier.'),
)
_QKV = re.compile(r'^(.*)\.attn\.qkv\.weight$')


def matches(state_dict: Dict[str, torch.Tensor]) -> bool:
    """HF keys: a ``continuous_position_bias_mlp`` under ``attention.self``."""
    return any('.attention.self.continuous_position_bias_mlp.' in k for k in state_dict)


def to_official(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Rename to official keys and stack each block's query/key/value weights into ``qkv.weight``.

    Raises:
        CheckpointError: a block with only some of its query/key/value weights.
    """
    return hf_to_official(state_dict, _PREFIX, stacked=('weight',))


def from_official(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The inverse of :func:`to_official`: HF keys with the ``swinv2.`` prefix (the head as ``classifier``),
    each block's ``qkv.weight`` (3C, C) split into query/key/value weights (C, C)."""
    out: Dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        match = _QKV.match(key)
        if match:
            block = _PREFIX + _rename(match.group(1), _INVERSE_RENAMES)
            for name, part in zip(('query', 'key', 'value'), value.chunk(3)):
                out[f'{block}.attention.self.{name}.weight'] = part
            continue
        key = _rename(key, _INVERSE_RENAMES)
        out[key if key.startswith('classifier.') else _PREFIX + key] = value
    return out


def hf_to_official(state_dict: Dict[str, torch.Tensor], prefix: str,
                   stacked: Sequence[str]) -> Dict[str, torch.Tensor]:
    """Rename HF Swin keys (V1 ``Swin*`` and V2 ``Swinv2*`` share them) to official ones and stack q/k/v.

    Args:
        state_dict: HF keys, with or without the task models' ``prefix`` (``'swinv2.'``, ``'swin.'``).
        prefix: removed where a key starts with it.
        stacked: the query/key/value parameters concatenated into ``attn.qkv.{name}`` in q, k, v order:
            ``('weight',)`` for V2 (its biases become ``q_bias``/``v_bias``), ``('weight', 'bias')`` for
            V1 (``qkv.weight`` (3C, C), ``qkv.bias`` (3C,)).

    Raises:
        CheckpointError: a block with only some of its query/key/value tensors.
    """
    pattern = re.compile(rf'^(.*)\.attention\.self\.(query|key|value)\.({"|".join(stacked)})$')
    out: Dict[str, torch.Tensor] = {}
    qkv: Dict[Tuple[str, str], Dict[str, torch.Tensor]] = {}
    for key, value in state_dict.items():
        if key.startswith(prefix):
            key = key[len(prefix):]
        match = pattern.match(key)
        if match:
            qkv.setdefault((_rename(match.group(1), _RENAMES), match.group(3)), {})[match.group(2)] = value
            continue
        out[_rename(key, _RENAMES)] = value
    for (block, name), parts in qkv.items():
        if len(parts) != 3:
            raise CheckpointError(f'{block}: found only the {"/".join(sorted(parts))} {name}(s) of query/key/value; '
                                  'the checkpoint is incomplete, download it again')
        out[f'{block}.attn.qkv.{name}'] = torch.cat([parts['query'], parts['key'], parts['value']])  # (3C, ...)
    return out


def _rename(key: str, renames: Sequence[Tuple[str, str]]) -> str:
    for pattern, replacement in renames:
        key = re.sub(pattern, replacement, key)
    return key
