"""SimMIM SwinV2 (microsoft/SimMIM, and the SimMIM models of microsoft/Swin-Transformer).

Pre-training checkpoints wrap the official model as ``encoder.`` next to a ``decoder``; their CPB
MLP is called ``rpe_mlp`` (also in SimMIM fine-tunes, without the prefix)::

    encoder.{official key}        <-> {official key}
    *.attn.rpe_mlp.*              <-> *.attn.cpb_mlp.*
    encoder.mask_token, decoder.* <-> mask_token, decoder.* (pre-training only: dropped when converting)

A SwinV2-H / G encoder pre-trained with extra norms every n blocks has them in the official-style
name, ``encoder.layers.{i}.blocks.{j}.norm3`` (``swinv2.py``), which maps to ``layers.{i}.blocks.{j}.norm3``
with the rest.

:func:`from_official` writes the pre-training form (``encoder.`` prefix). The coordinate tables these
checkpoints store are checked against the released CPB formula when converting
(``windows.pretrained_window_from_coords``), since the SimMIM-era code had a variant.
"""
from typing import Dict

import torch

NAME = 'simmim'
_PREFIX = 'encoder.'


def matches(state_dict: Dict[str, torch.Tensor]) -> bool:
    """SimMIM keys: an ``rpe_mlp``, or a ``cpb_mlp`` under ``encoder.layers``."""
    return any('.attn.rpe_mlp.' in k or (k.startswith('encoder.layers.') and '.attn.cpb_mlp.' in k)
               for k in state_dict)


def to_official(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Strip ``encoder.`` and rename ``rpe_mlp`` to ``cpb_mlp``."""
    out = {}
    for key, value in state_dict.items():
        if key.startswith(_PREFIX):
            key = key[len(_PREFIX):]
        out[key.replace('.attn.rpe_mlp.', '.attn.cpb_mlp.')] = value
    return out


def from_official(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Prefix ``encoder.`` (the decoder keeps its name) and rename ``cpb_mlp`` to ``rpe_mlp``."""
    return {(k if k.startswith('decoder.') else _PREFIX + k).replace('.attn.cpb_mlp.', '.attn.rpe_mlp.'): v
            for k, v in state_dict.items()}
