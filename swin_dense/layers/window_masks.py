"""Window partitioning and the shifted-window attention masks, built on the padded map.

Order (correct at any size): pad the map to window multiples, *then* roll by the shift, then cut
windows. The masks below are built on that padded, rolled map, so no token attends across the
image border (rolling first and padding afterwards, as timm does, leaks at sizes that are not
window multiples).

Mask values are the official finite ``-100`` (not ``-inf``): with padding-key masking a whole
region can be padding, and ``-inf`` would then give NaN rows.

The masks and the shifted token orders are cached per size in eager runs. While the ONNX exporter
traces (``torch.jit.is_tracing()``) the sizes are traced values (0-d tensors), and so are the window
and the shift (:func:`.swin_block.effective_window`): the masks and orders are then computed in the
graph from the input's shape, with no cache and no branch on a traced value, so one exported graph
serves every input size (docs/deploy.md).
"""
from functools import lru_cache
from typing import Optional, Sequence, Tuple, Union

import torch

MASK_VALUE = -100.0
SizeLike = Union[int, torch.Tensor]  # a size: an int, or a 0-d tensor while the ONNX exporter traces


def may_be_nonzero(values: Sequence[SizeLike]) -> bool:
    """Whether any of ``values`` is nonzero, or traced (its value is known only when the graph runs)."""
    return any(isinstance(v, torch.Tensor) or v != 0 for v in values)


def roll(x: torch.Tensor, shifts: Sequence[SizeLike], dims: Sequence[int]) -> torch.Tensor:
    """``torch.roll``, also for traced shifts: exported, ``torch.roll`` keeps the traced shift as a
    constant, so traced shifts gather with computed indices, ``out[i] = x[(i - shift) % n]``."""
    if not any(isinstance(s, torch.Tensor) for s in shifts):
        return torch.roll(x, shifts=tuple(shifts), dims=tuple(dims))
    for shift, dim in zip(shifts, dims):
        n = x.shape[dim]
        x = x.index_select(dim, (torch.arange(n, device=x.device) - shift) % n)
    return x


def window_partition(x: torch.Tensor, window_size: Tuple[SizeLike, SizeLike],
                     shift_size: Tuple[SizeLike, SizeLike] = (0, 0)) -> torch.Tensor:
    """Cut a map into windows, after a cyclic shift by ``-shift_size`` (``torch.roll``) if given.

    Args:
        x: (B, H, W, C) with H, W multiples of the window.
        window_size: (Wh, Ww).
        shift_size: (sh, sw); the shifted map's windows are gathered in one pass (a cached token
            order) instead of a ``torch.roll`` over two dims followed by a partition.

    Returns:
        (B * nW, Wh * Ww, C), windows in row-major order over the (shifted) map.
    """
    b, h, w, c = x.shape
    wh, ww = window_size
    if may_be_nonzero(shift_size) and torch.jit.is_tracing():
        return window_partition(roll(x, (-shift_size[0], -shift_size[1]), (1, 2)), window_size)
    if any(shift_size):
        order, _ = _shifted_window_order((h, w), tuple(window_size), tuple(shift_size), x.device)
        return x.reshape(b, h * w, c).index_select(1, order).view(-1, wh * ww, c)
    x = x.view(b, h // wh, wh, w // ww, ww, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, wh * ww, c)


def window_reverse(windows: torch.Tensor, window_size: Tuple[SizeLike, SizeLike], h: SizeLike, w: SizeLike,
                   shift_size: Tuple[SizeLike, SizeLike] = (0, 0)) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (B * nW, Wh * Ww, C) -> (B, H, W, C), rolled back by
    ``+shift_size`` if given."""
    wh, ww = window_size
    c = windows.shape[-1]
    if may_be_nonzero(shift_size) and torch.jit.is_tracing():
        return roll(window_reverse(windows, window_size, h, w), shift_size, (1, 2))
    if any(shift_size):
        _, restore = _shifted_window_order((h, w), tuple(window_size), tuple(shift_size), windows.device)
        return windows.reshape(-1, h * w, c).index_select(1, restore).view(-1, h, w, c)
    x = windows.view(-1, h // wh, w // ww, wh, ww, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


@lru_cache(maxsize=64)
def _shifted_window_order(size: Tuple[int, int], window_size: Tuple[int, int], shift_size: Tuple[int, int],
                          device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    """(order, restore), each (H * W,): token ``order[i]`` of the map is position i of the shifted
    map's windows, and position ``restore[t]`` of the windows holds token t."""
    h, w = size
    ids = torch.arange(h * w, device=device).view(1, h, w, 1)
    ids = torch.roll(ids, shifts=(-shift_size[0], -shift_size[1]), dims=(1, 2))
    order = window_partition(ids, window_size).reshape(-1)
    restore = torch.empty_like(order)
    restore[order] = torch.arange(h * w, device=device)
    return order, restore


def _region_ids(length: SizeLike, window: SizeLike, shift: SizeLike, device: torch.device) -> torch.Tensor:
    """Per-position region id along one axis: the official slices (0,-ws), (-ws,-s), (-s,None).
    A traced shift of 0 gives ids 0 and 1 split at a window border: no window mixes regions."""
    if not may_be_nonzero((shift,)):
        return torch.zeros(length, dtype=torch.long, device=device)
    pos = torch.arange(length, device=device)
    return (pos >= length - window).long() + (pos >= length - shift).long()


def attention_mask(padded_size: Tuple[SizeLike, SizeLike], window_size: Tuple[SizeLike, SizeLike],
                   shift_size: Tuple[SizeLike, SizeLike], pad: Tuple[SizeLike, SizeLike], mask_padding: bool,
                   device: torch.device) -> Optional[torch.Tensor]:
    """Additive attention mask for the windows of a padded (and rolled) map.

    Args:
        padded_size: (Hp, Wp), the map after padding to window multiples.
        window_size: (Wh, Ww).
        shift_size: (sh, sw), 0 for unshifted blocks.
        pad: (pad_h, pad_w), rows and columns of zero padding at the bottom and right before rolling.
        mask_padding: also stop real queries from attending to padded keys.
        device: where the mask lives.

    Returns:
        (nW, N, N) with 0 where attention is allowed and -100 where not, or None when nothing is masked.
        Cached per arguments, except while tracing for export, where the sizes are traced values.
    """
    if torch.jit.is_tracing():
        return _attention_mask(padded_size, window_size, shift_size, pad, mask_padding, device)
    return _cached_attention_mask(tuple(padded_size), tuple(window_size), tuple(shift_size), tuple(pad),
                                  mask_padding, device)


def _attention_mask(padded_size: Tuple[SizeLike, SizeLike], window_size: Tuple[SizeLike, SizeLike],
                    shift_size: Tuple[SizeLike, SizeLike], pad: Tuple[SizeLike, SizeLike], mask_padding: bool,
                    device: torch.device) -> Optional[torch.Tensor]:
    """:func:`attention_mask`, computed."""
    hp, wp = padded_size
    (wh, ww), (sh, sw) = window_size, shift_size
    use_pad = mask_padding and may_be_nonzero(pad)
    if not use_pad and not may_be_nonzero(shift_size):
        return None
    region = (_region_ids(hp, wh, sh, device)[:, None] * 3 + _region_ids(wp, ww, sw, device)[None, :])
    region = window_partition(region[None, :, :, None], window_size).squeeze(-1)  # (nW, N)
    mask = region[:, None, :] != region[:, :, None]
    if use_pad:
        is_pad = ((torch.arange(hp, device=device) >= hp - pad[0])[:, None]
                  | (torch.arange(wp, device=device) >= wp - pad[1])[None, :])
        # The padding sits at the bottom/right before the roll; roll it like the features.
        is_pad = roll(is_pad, (-sh, -sw), (0, 1))
        is_pad = window_partition(is_pad[None, :, :, None], window_size).squeeze(-1)  # (nW, N)
        mask = mask | (is_pad[:, None, :] & ~is_pad[:, :, None])
    return torch.zeros(mask.shape, device=device).masked_fill_(mask, MASK_VALUE)


_cached_attention_mask = lru_cache(maxsize=64)(_attention_mask)
