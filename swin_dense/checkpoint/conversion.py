"""The steps and the record both converters share (SwinV2 -> :class:`SwinTransformerV2`, Swin V1 -> mmdet/mmseg).

A conversion takes the backbone of a whole model (:func:`split_backbone`), brings it to the
official key scheme with its layout's ``to_official``, drops what is no backbone weight for a
counted reason (:func:`keep_backbone`, ``DROP_RULES``), checks what is left against the key scheme of
the architecture read off the tensors (:func:`check_keys`) and accounts for every source tensor in
one :class:`Conversion`. The version-specific steps are in ``convert.py`` (SwinV2) and ``v1/convert.py``.
"""
import re
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import torch

from .errors import CheckpointError
from .keys import short_keys
from .stem import StemArch

OUTSIDE_BACKBONE = 'outside the backbone of a whole model (neck, heads)'
_WINDOW_BUFFERS = re.compile(r'(relative_coords_table|relative_position_index|attn_mask)$')
# Official-scheme keys that are no backbone weights: (why they are dropped, test).
DROP_RULES: Tuple[Tuple[str, Callable[[str], bool]], ...] = (
    ('window buffers (rebuilt by the model for its window)', lambda k: bool(_WINDOW_BUFFERS.search(k))),
    ('classification head', lambda k: k.startswith('head.')),
    ('masked-image-modeling only (mask token, decoder)', lambda k: k == 'mask_token' or k.startswith('decoder.')),
)


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


def keep_backbone(official: Dict[str, torch.Tensor], dropped: Dict[str, List[str]]) -> Dict[str, torch.Tensor]:
    """The backbone weights of an official-scheme state dict; every other key goes to ``dropped[reason]``.

    Args:
        official: the source in the official key scheme.
        dropped: reason -> dropped keys, extended in place.
    """
    kept: Dict[str, torch.Tensor] = {}
    for key, value in official.items():
        reason = drop_reason(key)
        if reason is None:
            kept[key] = value
        else:
            dropped.setdefault(reason, []).append(key)
    return kept


def check_keys(official: Dict[str, torch.Tensor], arch: StemArch, layout: str, destination: str,
               variants: str) -> None:
    """Raise unless the backbone weights ``official`` are exactly those of ``arch.official_keys()``.

    Args:
        official: backbone weights in the official scheme (after :func:`keep_backbone`).
        arch: the architecture read off them.
        layout: the source layout, for the messages.
        destination: the model the weights are for, e.g. ``'SwinTransformerV2'``.
        variants: what a tensor with no place suggests the source is, e.g. ``'a SwinV2 variant this
            backbone does not implement (...)'``.

    Raises:
        CheckpointError: a tensor with no place in ``destination``, or one the architecture needs is
            missing (both name the keys), so that nothing is dropped or left random silently.
    """
    required, optional = arch.official_keys()
    unknown = sorted(set(official) - required - optional)
    if unknown:
        raise CheckpointError(
            f'{len(unknown)} tensor(s) of this {layout}-layout checkpoint have no place in {destination} '
            f'({short_keys(unknown)}): it is {variants}, or the wrong --src-format was given')
    missing = sorted(required - set(official))
    if missing:
        raise CheckpointError(
            f'the {layout}-layout checkpoint lacks {len(missing)} tensor(s) that its architecture ({arch.describe()}) '
            f'needs ({short_keys(missing)}): it is incomplete or truncated; download or export it again')


@dataclass
class Conversion:
    """A state dict converted for a backbone, and what happened to every source tensor (SwinV2 and Swin V1).

    Attributes:
        state_dict: the destination's keys. SwinV2: :class:`SwinTransformerV2`'s (official scheme,
            final norm as ``norm{last}``). Swin V1: mmdet's / mmseg's ``SwinTransformer``'s (no
            ``backbone.`` prefix), loading strictly into ``SwinTransformer(**arch.config(),
            out_indices=range(num_stages))``.
        layout: the source layout (a key of ``LAYOUTS`` or ``V1_LAYOUTS``).
        arch: the architecture found (``convert.Arch`` or ``v1.V1Arch``, whose ``window_size`` is the
            one after any resize).
        destination: what the tensors are, for the coverage line (``'backbone'``, ``'mmdet/mmseg
            SwinTransformer'``).
        num_source: tensors in the source state dict.
        dropped: reason -> keys dropped for it (official names, or source names outside the backbone).
        added: destination keys with no source tensor (Swin V1: the output norms before the last,
            LayerNorm(1, 0)).
        trained_window: the window each stage was trained at: SwinV2 from the stored coordinate
            tables (None without them), Swin V1 from the bias tables (before any resize).
        coords_pretrained_window: SwinV2: the window per stage the stored coordinate tables were
            normalised by (None without them).
    """

    state_dict: Dict[str, torch.Tensor]
    layout: str
    arch: StemArch
    destination: str
    num_source: int
    dropped: Dict[str, List[str]] = field(default_factory=dict)
    added: List[str] = field(default_factory=list)
    trained_window: Optional[List[int]] = None
    coords_pretrained_window: Optional[List[int]] = None

    @property
    def num_used(self) -> int:
        """Source tensors that went into ``state_dict`` (HF's separate query/key/value tensors count one each)."""
        return self.num_source - sum(len(keys) for keys in self.dropped.values())

    def coverage(self) -> str:
        """``used U/N source tensors -> P {destination} tensors; dropped D: <count reason (e.g. key)>; ...``."""
        num_dropped = sum(len(keys) for keys in self.dropped.values())
        reasons = '; '.join(f'{len(keys)} {reason} (e.g. {keys[0]})' for reason, keys in self.dropped.items())
        produced = f'{len(self.state_dict) - len(self.added)} {self.destination} tensors'
        return (f'used {self.num_used}/{self.num_source} source tensors -> {produced}; dropped {num_dropped}'
                + (f': {reasons}' if reasons else ''))
