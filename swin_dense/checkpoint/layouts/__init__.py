"""Source layouts of SwinV2 weights, each mapped to the official key scheme and back.

Every layout module defines ``NAME``, ``matches(state_dict) -> bool``,
``to_official(state_dict) -> state_dict`` and its inverse ``from_official(state_dict) -> state_dict``.
The official scheme is the microsoft/Swin-Transformer one (``layers.{i}.downsample`` at the end of
stage i, final ``norm``, ``head``), which is also this package's backbone layout apart from ``norm``
-> ``norm{last}``. Layouts rename, merge and split but never drop a key: keys that are not backbone
weights (heads, buffers, decoders) keep a recognisable name and are dropped, and counted, by
``convert.convert_state_dict``; keys a layout has no name for pass through as they are.
"""
from typing import Dict

import torch

from . import hf, mmpretrain, official, simmim, timm

# Checked in this order by detect_layout; official (the plain scheme) last.
LAYOUTS = {m.NAME: m for m in (hf, mmpretrain, simmim, timm, official)}

__all__ = ['LAYOUTS', 'from_official_state_dict']


def from_official_state_dict(state_dict: Dict[str, torch.Tensor], layout: str) -> Dict[str, torch.Tensor]:
    """An official-scheme state dict in the keys and shapes of ``layout``: the inverse of reading that layout.

    ``LAYOUTS[layout].to_official(from_official_state_dict(sd, layout)) == sd`` for every layout, key
    for key and bit for bit. Backbone-layout weights (output norms ``norm{i}``) go through
    :func:`~swin_dense.checkpoint.to_official_state_dict` first; the output norms before the last, which
    the official scheme has no name for, pass through as ``norm{i}`` (mmpretrain has them under that
    name; timm and HF have none, so drop them before loading there).

    Args:
        state_dict: official keys: ``patch_embed.*``, ``layers.{i}.blocks.{j}.*`` (``attn.qkv.weight``
            (3C, C)), ``layers.{i}.downsample.*`` (``reduction.weight`` (2C, 4C) in the official
            channel order), final ``norm.*``, optionally ``head.*``, window buffers, ``mask_token``.
        layout: a key of ``LAYOUTS``: ``'official'`` (a copy), ``'timm'`` (downsample at the start of
            the next stage, ``head.fc``), ``'hf'`` (``swinv2.``-prefixed transformers names,
            ``classifier``; ``qkv.weight`` split into query/key/value (C, C) each), ``'mmpretrain'``
            (``stages.*``, downsample at the start of the next stage with ``reduction.weight``
            (2C, 4C) in ``nn.Unfold`` channel order, final norm as ``norm{last}``) or ``'simmim'``
            (``encoder.`` prefix, ``rpe_mlp``).

    Returns:
        the same tensors (views or reordered copies) under the layout's keys.

    Raises:
        ValueError: an unknown layout name.
    """
    if layout not in LAYOUTS:
        raise ValueError(f'unknown SwinV2 layout {layout!r}; use one of {sorted(LAYOUTS)}')
    return LAYOUTS[layout].from_official(state_dict)
