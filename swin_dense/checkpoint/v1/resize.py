"""Resizing a Swin V1 relative position bias table to another window, as mmdet / mmseg do at load time.

A window-W attention has a learned bias for each of the (2W-1)^2 relative offsets and each head,
stored as a table ((2W-1)^2, heads) with the offsets row-major over a (2W-1, 2W-1) grid. mmdet's
and mmseg's ``SwinTransformer.init_weights`` (and the official fine-tuning code) fit a table to a
new window by bicubic interpolation of that grid (``align_corners=False``); :func:`resize_bias_table`
computes the same.
"""
import math

import torch
import torch.nn.functional as F

from ..errors import CheckpointError


def window_of_table(table: torch.Tensor, key: str = 'relative_position_bias_table') -> int:
    """The window W of a bias table ((2W-1)^2, heads).

    Raises:
        CheckpointError: the table is not 2-D with (2W-1)^2 rows for a whole W (a non-square window).
    """
    side = math.isqrt(table.shape[0]) if table.dim() == 2 else 0
    if table.dim() != 2 or side * side != table.shape[0] or side % 2 == 0:
        raise CheckpointError(f'{key} has shape {tuple(table.shape)}, not ((2W-1)^2, heads) for a square window W: '
                              'only square windows are supported; the checkpoint is corrupt or another model')
    return (side + 1) // 2


def resize_bias_table(table: torch.Tensor, window: int) -> torch.Tensor:
    """Bicubic resize of a bias table ((2W-1)^2, heads) to window ``window``: ((2*window-1)^2, heads).

    Computed in float32 (half tables included) and returned in the table's dtype; a table already
    of that window is returned as it is.
    """
    if window < 1:
        raise ValueError(f'window must be a positive int, got {window}')
    heads = table.shape[1]
    old_side, new_side = 2 * window_of_table(table) - 1, 2 * window - 1
    if old_side == new_side:
        return table
    grid = table.float().permute(1, 0).reshape(1, heads, old_side, old_side)  # (1, heads, 2W-1, 2W-1)
    resized = F.interpolate(grid, size=(new_side, new_side), mode='bicubic', align_corners=False)
    return resized.reshape(heads, new_side * new_side).permute(1, 0).contiguous().to(table.dtype)
