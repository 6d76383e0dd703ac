"""Bookkeeping shared by the SwinV2 and the Swin V1 converters.

Both converters bring a source to the official microsoft/Swin-Transformer key scheme first
(``layers.{i}.blocks.{j}.*``, ``layers.{i}.downsample`` at the end of stage i, final ``norm``,
``head``), then drop what is no backbone weight for a counted reason (``DROP_RULES``) and account
for every source tensor in one coverage line.
"""
import re
from dataclasses import dataclass
from types import ModuleType
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from .errors import CheckpointError

OUTSIDE_BACKBONE = 'outside the backbone of a whole model (neck, heads)'
_WINDOW_BUFFERS = re.compile(r'(relative_coords_table|relative_position_index|attn_mask)$')
# Official-scheme keys that are no backbone weights: (why they are dropped, test).
DROP_RULES: Tuple[Tuple[str, Callable[[str], bool]], ...] = (
    ('window buffers (rebuilt by the model for its window)', lambda k: bool(_WINDOW_BUFFERS.search(k))),
    ('classification head', lambda k: k.startswith('head.')),
    ('masked-image-modeling only (mask token, decoder)', lambda k: k == 'mask_token' or k.startswith('decoder.')),
)
_BLOCK = re.compile(r'^layers\.(\d+)\.blocks\.(\d+)\.')


def drop_reason(key: str) -> Optional[str]:
    """Why an official-scheme key is no backbone weight (a ``DROP_RULES`` reason), or None for a weight."""
    return next((reason for reason, test in DROP_RULES if test(key)), None)


def split_backbone(state_dict: Dict[str, torch.Tensor]) -> Tuple[Dict[str, torch.Tensor], Dict[str, List[str]]]:
    """The backbone of a whole model (keys ``backbone.*``, prefix removed) and what is outside it.

    A state dict without ``backbone.`` keys is returned as it is (a bare backbone or classifier).

    Returns:
        (source state dict, reason -> dropped keys); keys outside the backbone are dropped with their
        ``DROP_RULES`` reason (a head) or as ``OUTSIDE_BACKBONE``.
    """
    if not any(k.startswith('backbone.') for k in state_dict):
        return state_dict, {}
    dropped: Dict[str, List[str]] = {}
    source = {k[len('backbone.'):]: v for k, v in state_dict.items() if k.startswith('backbone.')}
    for key in state_dict:
        if not key.startswith('backbone.'):
            dropped.setdefault(drop_reason(key) or OUTSIDE_BACKBONE, []).append(key)
    return source, dropped


def block_depths(official: Dict[str, torch.Tensor]) -> Dict[int, int]:
    """Stage -> number of blocks, read off ``layers.{i}.blocks.{j}.*`` keys of the official scheme."""
    depths: Dict[int, int] = {}
    for key in official:
        match = _BLOCK.match(key)
        if match:
            stage, block = int(match.group(1)), int(match.group(2))
            depths[stage] = max(depths.get(stage, 0), block + 1)
    return depths


@dataclass
class StemArch:
    """What a Swin V1 or V2 state dict tells about its architecture apart from attention specifics."""

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


def matching_layout(layouts: Mapping[str, ModuleType], state_dict: Dict[str, torch.Tensor]) -> Optional[str]:
    """The first layout (in the mapping's order) whose ``matches(state_dict)`` holds, or None."""
    return next((name for name, layout in layouts.items() if layout.matches(state_dict)), None)


def resolve_layout(state_dict: Dict[str, torch.Tensor], layout: str, layouts: Mapping[str, ModuleType],
                   detect: Callable[[Dict[str, torch.Tensor]], str], family: str) -> str:
    """The layout to convert ``state_dict`` from: ``detect(state_dict)`` for ``'auto'``, else ``layout``
    once checked against the keys.

    Args:
        layout: ``'auto'`` or a key of ``layouts``.
        layouts: name -> layout module (with ``matches``).
        detect: returns the matching layout's name or raises :class:`CheckpointError`.
        family: ``'SwinV2'`` or ``'Swin V1'``, for the messages.

    Raises:
        ValueError: ``layout`` is no known name.
        CheckpointError: the keys are not in the given layout (the message says what they look like).
    """
    if layout == 'auto':
        return detect(state_dict)
    if layout not in layouts:
        raise ValueError(f'unknown {family} layout {layout!r}; use auto or one of {sorted(layouts)}')
    if not layouts[layout].matches(state_dict):
        try:
            found = f'the {detect(state_dict)} layout'
        except CheckpointError as err:
            found = f'no {family} layout: {err}'
        raise CheckpointError(f'the checkpoint is not in the {layout} layout (its keys look like {found}); '
                              'give the right --src-format or auto')
    return layout


def key_sample(state_dict: Dict[str, torch.Tensor], limit: int = 5) -> str:
    """The first keys of a state dict for an error message."""
    return ', '.join(list(state_dict)[:limit]) or 'no keys at all'


def coverage_line(num_source: int, dropped: Dict[str, List[str]], produced: str) -> str:
    """``used U/N source tensors -> {produced}; dropped D: <count reason (e.g. key)>; ...``."""
    num_dropped = sum(len(keys) for keys in dropped.values())
    reasons = '; '.join(f'{len(keys)} {reason} (e.g. {keys[0]})' for reason, keys in dropped.items())
    return (f'used {num_source - num_dropped}/{num_source} source tensors -> {produced}; dropped {num_dropped}'
            + (f': {reasons}' if reasons else ''))


def short(keys: Sequence[str], limit: int = 4) -> str:
    """The first ``limit`` keys, comma-separated, and how many more."""
    return ', '.join(keys[:limit]) + (f', ... (+{len(keys) - limit})' if len(keys) > limit else '')
