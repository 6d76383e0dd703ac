"""Hugging Face transformers ``Swin*`` V1 (``SwinModel``, ``SwinForImageClassification``, ...).

Keys have a ``swin.`` prefix (task models) or none (``SwinModel``). They are the SwinV2 HF keys
(``checkpoint/layouts/hf.py``) with V1's attention::

    embeddings.patch_embeddings.projection        -> patch_embed.proj
    embeddings.norm                               -> patch_embed.norm
    encoder.layers.{i}.blocks.{j}.
        layernorm_before                          -> norm1   (in V1 it is the pre-attention norm)
        attention.self.{query,key,value}.weight   -> attn.qkv.weight (3C, C), rows q, k, v
        attention.self.{query,key,value}.bias     -> attn.qkv.bias (3C,)
        attention.self.relative_position_bias_table -> attn.relative_position_bias_table ((2W-1)^2, heads)
        attention.self.relative_position_index    -> attn.relative_position_index (buffer, dropped)
        attention.output.dense                    -> attn.proj
        layernorm_after                           -> norm2
        intermediate.dense                        -> mlp.fc1
        output.dense                              -> mlp.fc2
    encoder.layers.{i}.downsample.{norm,reduction} -> layers.{i}.downsample.*  (end of stage i, official order)
    layernorm                                     -> norm
    classifier                                    -> head
"""
from typing import Dict

import torch

from ...layouts.hf import hf_to_official

NAME = 'v1-hf'
_PREFIX = 'swin.'


def matches(state_dict: Dict[str, torch.Tensor]) -> bool:
    """HF V1 keys: a ``relative_position_bias_table`` under ``attention.self``."""
    return any(k.endswith('.attention.self.relative_position_bias_table') for k in state_dict)


def to_official(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Rename to official keys and stack each block's query/key/value weights and biases into ``qkv``.

    Raises:
        CheckpointError: a block with only some of its query/key/value tensors.
    """
    return hf_to_official(state_dict, _PREFIX, stacked=('weight', 'bias'))
