"""Which ``pretrained_window_size`` a SwinV2 checkpoint needs (notes section 3.8).

The continuous position bias MLP of a checkpoint was fit on coordinates normalised by a window per
stage: the pretrained window if one was set, else the stage's effective training window (the
official code shrinks the window to the map size, so a 192-px window-12 model has window 6 in
stage 4). A model that uses that checkpoint with other windows must be configured with exactly
those per-stage values. Three sources tell them, most reliable first:

1. the checkpoint itself: the official code and mmpretrain store the normalised coordinate table
   (``relative_coords_table``), from which the normalising window follows exactly;
2. a Hugging Face ``config.json`` (``pretrained_window_sizes``, or ``window_size``/``image_size``);
3. the file name of a released checkpoint (``PRETRAINED_WINDOW_BY_NAME``).
"""
import re
from typing import Any, Dict, List, Optional, Tuple

import torch

from ..layers.position_bias import relative_coords_table
from .errors import CheckpointError

# The meta key under which the converter records the window, and the backbone's loader reads it.
META_PRETRAINED_WINDOW = 'pretrained_window_size'
# (pattern on the lower-cased path, per-stage pretrained window, which release it names).
PRETRAINED_WINDOW_BY_NAME: Tuple[Tuple[str, List[int], str], ...] = (
    (r'window12to(16|24)', [12, 12, 12, 6], '22K window-12 model fine-tuned at window 16/24: keep its 12-frame'),
    (r'w(16|24)_in21k-pre', [12, 12, 12, 6], 'mmpretrain copy of a 12to16 / 12to24 fine-tune'),
    (r'window12[_-]192', [12, 12, 12, 6], 'ImageNet-22K, 192 px, window 12 (stage 4 runs 6x6)'),
    (r'w12_3rdparty_in21k-192px', [12, 12, 12, 6], 'mmpretrain copy of a 22K window-12 model'),
    (r'img192[_-]+window12', [12, 12, 12, 6], 'SimMIM pre-training, 192 px, window 12'),
    (r'img224[_-]+window14', [12, 12, 12, 6], 'SimMIM fine-tune at window 14 of a window-12 pre-training'),
    (r'window8[_-]256', [8, 8, 8, 8], 'ImageNet-1K, 256 px, window 8'),
    (r'w8_3rdparty_in1k-256px', [8, 8, 8, 8], 'mmpretrain copy of a window-8 model'),
    (r'window16[_-]256', [16, 16, 16, 8], 'ImageNet-1K, 256 px, window 16 (stage 4 runs 8x8)'),
    (r'w16_3rdparty_in1k-256px', [16, 16, 16, 8], 'mmpretrain copy of a window-16 model'),
)
_COORDS_TABLE = 'layers.{}.blocks.0.attn.relative_coords_table'


def pretrained_window_from_name(path: str) -> Optional[List[int]]:
    """Per-stage pretrained window of a released 4-stage checkpoint, from its file or folder name, or None."""
    name = path.replace('\\', '/').lower()
    for pattern, windows, _ in PRETRAINED_WINDOW_BY_NAME:
        if re.search(pattern, name):
            return list(windows)
    return None


def pretrained_window_from_hf_config(config: Dict[str, Any]) -> Optional[List[int]]:
    """Per-stage pretrained window of a Hugging Face ``Swinv2Config`` dict, or None if it lacks the fields.

    A stage with ``pretrained_window_sizes`` 0 was normalised by its own effective window:
    ``min(window_size, image_size / patch_size / 2^i)`` (HF shrinks the window as the official code).
    """
    try:
        depths = list(config['depths'])
        window = int(config['window_size'])
        image_size = config['image_size']
        patch_size = config['patch_size']
    except (KeyError, TypeError):
        return None
    image = min(image_size) if isinstance(image_size, (list, tuple)) else int(image_size)
    patch = min(patch_size) if isinstance(patch_size, (list, tuple)) else int(patch_size)
    pretrained = list(config.get('pretrained_window_sizes') or [0] * len(depths))
    return [int(p) if p > 0 else min(window, image // patch // 2 ** i) for i, p in enumerate(pretrained)]


def trained_windows(official: Dict[str, torch.Tensor], num_stages: int) -> Optional[List[int]]:
    """Effective training window of every stage, from the stored coordinate tables, or None without them.

    Args:
        official: state dict in the official key scheme.
        num_stages: number of stages.
    """
    tables = [official.get(_COORDS_TABLE.format(i)) for i in range(num_stages)]
    if any(t is None for t in tables):
        return None
    return [(t.shape[1] + 1) // 2 for t in tables]


def pretrained_window_from_coords(official: Dict[str, torch.Tensor], num_stages: int) -> Optional[List[int]]:
    """The window each stage's stored coordinate table was normalised by, or None without tables.

    The official table (1, 2W-1, 2W-1, 2) holds ``sign(t) log2(1 + |t|) / 3`` with
    ``t = 8 d / (P - 1)`` for offsets ``d`` up to ``W - 1``; its maximum ``m`` gives
    ``P = 1 + 8 (W - 1) / (2^(3m) - 1)``. The whole table is then recomputed with that ``P`` and
    compared, which also proves the checkpoint uses the released CPB formula.

    Raises:
        CheckpointError: a table that no pretrained window reproduces (another CPB variant, such
            as the early arXiv-v1 / SimMIM-era one, or a non-square window).
    """
    windows = trained_windows(official, num_stages)
    if windows is None:
        return None
    found = []
    for i, window in enumerate(windows):
        key = _COORDS_TABLE.format(i)
        table = official[key].float()
        if window < 2 or not torch.isfinite(table).all():
            return None  # a 1-token window (official NaN table) says nothing about the frame
        peak = float(table[..., 0].max())
        pretrained = round(1 + 8 * (window - 1) / (2 ** (3 * peak) - 1)) if peak > 0 else 0
        square = tuple(table.shape) == (1, 2 * window - 1, 2 * window - 1, 2)
        if not (square and pretrained >= 2 and torch.allclose(
                relative_coords_table((window, window), (pretrained, pretrained), torch.device('cpu')),
                table[0], atol=1e-4)):
            raise CheckpointError(
                f'{key} {tuple(table.shape)} does not follow the released SwinV2 position-bias formula '
                'sign(t)*log2(1+|t|)/3 with t = 8*d/(pretrained_window-1) on a square window: the checkpoint was '
                'trained with another CPB variant (e.g. the early arXiv-v1 / SimMIM-era one) that '
                'SwinTransformerV2 does not implement, so its weights would compute a different function')
        found.append(pretrained)
    return found


def parse_window_arg(text: str) -> List[int]:
    """``'12'`` or ``'12,12,12,6'`` -> list of ints (one value means the same for every stage).

    Raises:
        ValueError: not a comma list of integers >= 2 (or 0 for none).
    """
    try:
        values = [int(v) for v in text.split(',')]
    except ValueError:
        raise ValueError(f'{text!r}: give an integer or a comma list such as 12,12,12,6') from None
    if any(v == 1 or v < 0 for v in values):
        raise ValueError(f'{text!r}: use 0 (none) or windows >= 2')
    return values
