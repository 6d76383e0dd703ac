"""Log-spaced continuous position bias (CPB) of Swin Transformer V2 (paper section 3.3).

The bias between two tokens of a window is predicted by a small MLP (``cpb_mlp``) from their
log-spaced relative coordinates, so a model trained with small windows can be run with larger
ones: the coordinate table is regenerated for the new window and the MLP extrapolates.

Coordinates (official code): relative offsets ``dh, dw`` in ``[-(W-1), W-1]`` are divided by
``pretrained_window - 1`` (or ``window - 1`` when no pretrained window is given), multiplied by 8
and mapped through ``sign(x) * log2(1 + |x|) / log2(8)``. The MLP output goes through
``16 * sigmoid``.

The coordinate table and the index are cached per window; while the ONNX exporter traces a window
that is a traced value (a 0-d tensor, :func:`.swin_block.effective_window`), they are computed in the
graph instead, so one exported graph holds for every window the input size gives.
"""
from functools import lru_cache
from typing import Tuple, Union

import torch
import torch.nn as nn

CPB_HIDDEN_DIMS = 512
WindowSize = Tuple[Union[int, torch.Tensor], Union[int, torch.Tensor]]  # ints, or 0-d tensors while traced


def at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32, or as it is if its type is wider (a float64 reference model stays float64)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def build_cpb_mlp(num_heads: int, hidden_dims: int = CPB_HIDDEN_DIMS) -> nn.Sequential:
    """The official ``cpb_mlp``: Linear(2, 512) -> ReLU -> Linear(512, num_heads, bias=False)."""
    return nn.Sequential(
        nn.Linear(2, hidden_dims, bias=True),
        nn.ReLU(inplace=True),
        nn.Linear(hidden_dims, num_heads, bias=False))


@lru_cache(maxsize=64)
def relative_coords_table(window_size: Tuple[int, int], pretrained_window_size: Tuple[int, int],
                          device: torch.device) -> torch.Tensor:
    """Log-spaced relative coordinates of one window.

    Args:
        window_size: effective window (Wh, Ww).
        pretrained_window_size: window the MLP was trained with, (0, 0) for none.
        device: where the table lives.

    Returns:
        Tensor of shape (2Wh-1, 2Ww-1, 2), float32; ``[..., 0]`` is the row offset, ``[..., 1]``
        the column offset.
    """
    wh, ww = window_size
    rh = torch.arange(-(wh - 1), wh, dtype=torch.float32, device=device)
    rw = torch.arange(-(ww - 1), ww, dtype=torch.float32, device=device)
    table = torch.stack(torch.meshgrid(rh, rw, indexing='ij'), dim=-1)
    if pretrained_window_size[0] > 0:
        norm_h, norm_w = pretrained_window_size[0] - 1, pretrained_window_size[1] - 1
    else:
        norm_h, norm_w = wh - 1, ww - 1
    norm = torch.stack([torch.as_tensor(norm_h, device=device), torch.as_tensor(norm_w, device=device)])
    # A 1-pixel window has only the offset 0; divide by 1 there instead of 0 (the official 0/0 is NaN).
    table = table / norm.clamp(min=1).to(torch.float32)
    table = table * 8
    return torch.sign(table) * torch.log2(table.abs() + 1.0) / 3.0


@lru_cache(maxsize=64)
def relative_position_index(window_size: Tuple[int, int], device: torch.device) -> torch.Tensor:
    """Index into the flattened coordinate table for every (query, key) pair of a window.

    Returns:
        Long tensor of shape (N, N), N = Wh * Ww, with
        ``index[i, j] = (dh + Wh - 1) * (2Ww - 1) + (dw + Ww - 1)`` and (dh, dw) = coords[i] - coords[j].
    """
    wh, ww = window_size
    coords = torch.stack(torch.meshgrid(torch.arange(wh, device=device), torch.arange(ww, device=device),
                                        indexing='ij')).flatten(1)  # (2, N)
    rel = coords[:, :, None] - coords[:, None, :]  # (2, N, N)
    return (rel[0] + wh - 1) * (2 * ww - 1) + (rel[1] + ww - 1)


def continuous_position_bias(cpb_mlp: nn.Module, num_heads: int, window_size: WindowSize,
                             pretrained_window_size: Tuple[int, int]) -> torch.Tensor:
    """Evaluate the CPB for one window.

    Args:
        cpb_mlp: the block's MLP (2 -> hidden -> num_heads).
        num_heads: number of attention heads.
        window_size: effective window (Wh, Ww).
        pretrained_window_size: (0, 0) for none.

    Returns:
        ``16 * sigmoid(bias)`` of shape (num_heads, N, N), N = Wh * Ww, in float32 (float64 for a
        float64 MLP).
    """
    device = cpb_mlp[0].weight.device
    traced = any(isinstance(side, torch.Tensor) for side in window_size)
    coords, positions = ((relative_coords_table.__wrapped__, relative_position_index.__wrapped__) if traced
                         else (relative_coords_table, relative_position_index))
    table = coords(tuple(window_size), tuple(pretrained_window_size), device)
    index = positions(tuple(window_size), device)
    with torch.autocast(device_type=device.type, enabled=False):
        bias_table = cpb_mlp(table.view(-1, 2).to(cpb_mlp[0].weight.dtype))  # ((2Wh-1)(2Ww-1), nH)
    bias_table = at_least_fp32(bias_table)
    n = window_size[0] * window_size[1]
    # sigmoid on the small table, then one gather into a contiguous (nH, N, N): fused attention
    # kernels copy a non-contiguous mask on every call.
    bias_table = 16 * torch.sigmoid(bias_table)
    return torch.index_select(bias_table.t(), 1, index.view(-1)).view(num_heads, n, n)
