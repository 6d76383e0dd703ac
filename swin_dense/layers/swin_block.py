"""Swin Transformer V2 building blocks: the res-post-norm block, V2 patch merging and a stage.

Tensors flow as (B, H, W, C) maps inside a stage, so any H x W works: each block pads its input to
window multiples, shifts, attends within windows, and crops the padding off again.
"""
from typing import Any, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks import DropPath
from torch.utils.checkpoint import checkpoint

from .activation_checkpoint import checkpoint_if_grad_enabled
from .linear import FusedLinear
from .window_attention import WindowAttentionV2
from .window_masks import SizeLike, attention_mask, window_partition, window_reverse


class Mlp(nn.Module):
    """fc1 (C -> hidden) -> exact GELU -> dropout -> fc2 (hidden -> C) -> dropout.

    fc1 and fc2 are :class:`.FusedLinear` layers called as modules, and the GELU is a module of its
    own, so a hook or wrapper around fc1 sees (and wraps) a plain linear map.
    """

    def __init__(self, dim: int, hidden_dims: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.fc1 = FusedLinear(dim, hidden_dims)
        self.act = nn.GELU()
        self.fc2 = FusedLinear(hidden_dims, dim)
        self.drop = nn.Dropout(drop_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., C) -> (..., C)."""
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class SwinBlockV2(nn.Module):
    """Res-post-norm Swin V2 block: ``x + DropPath(LN(attn(x)))``, then ``x + DropPath(LN(mlp(x)))``,
    then, with ``extra_norm``, the extra main-branch LayerNorm ``norm3`` of SwinV2-H/G (paper section 3.2).

    The window and shift are chosen by the stage from the map size, so one block serves any input.

    Args:
        dim: channels C.
        num_heads: attention heads.
        pretrained_window_size: (0, 0) for none.
        mlp_ratio: MLP hidden size over C.
        qkv_bias: learn q and v biases.
        drop_rate: dropout after the MLP and the attention projection.
        attn_drop_rate: dropout on the attention weights.
        drop_path_rate: stochastic depth rate of this block.
        attn_impl: ``'sdpa'`` or ``'eager'`` (see :class:`WindowAttentionV2`).
        attn_chunk_size: sequential attention: windows per attention call, each call checkpointed
            while gradients are recorded; 0 for all at once.
        mlp_chunk_size: sequential MLP: ``mlp_chunk_size * window**2`` tokens per call of
            ``norm2(mlp(x))``, each checkpointed while gradients are recorded; 0 for all at once.
        extra_norm: end the block with ``norm3`` (a LayerNorm of the block output, after the MLP
            residual; mmpretrain's ``extra_norm``), None otherwise.
    """

    def __init__(self, dim: int, num_heads: int, pretrained_window_size: Tuple[int, int] = (0, 0),
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, attn_impl: str = 'sdpa', attn_chunk_size: int = 0,
                 mlp_chunk_size: int = 0, extra_norm: bool = False) -> None:
        super().__init__()
        self.mlp_chunk_size = mlp_chunk_size
        self.attn = WindowAttentionV2(dim, num_heads, pretrained_window_size, qkv_bias=qkv_bias,
                                      attn_drop_rate=attn_drop_rate, proj_drop_rate=drop_rate, attn_impl=attn_impl,
                                      chunk_size=attn_chunk_size)
        self.norm1 = nn.LayerNorm(dim)
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop_rate)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim) if extra_norm else None

    def forward(self, x: torch.Tensor, window_size: int, shift_size: int,
                mask: Optional[torch.Tensor]) -> torch.Tensor:
        """Apply the block.

        Args:
            x: (B, H, W, C).
            window_size: effective window (square).
            shift_size: cyclic shift, 0 for none.
            mask: (nW, N, N) additive mask for the padded, shifted map, or None.

        Returns:
            (B, H, W, C).
        """
        b, h, w, c = x.shape
        shortcut = x
        pad_h, pad_w = (-h) % window_size, (-w) % window_size
        if pad_h or pad_w:
            x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
        window, shift = (window_size, window_size), (shift_size, shift_size)
        windows = self.attn(window_partition(x, window, shift), window, mask)
        x = window_reverse(windows, window, h + pad_h, w + pad_w, shift)[:, :h, :w]
        x = shortcut + self.drop_path(self.norm1(x))
        x = x + self.drop_path(self._ffn(x, window_size))
        return x if self.norm3 is None else self.norm3(x)

    def _ffn(self, x: torch.Tensor, window_size: int) -> torch.Tensor:
        """``norm2(mlp(x))`` of (B, H, W, C). In sequential mode (``mlp_chunk_size`` > 0), over
        ``mlp_chunk_size * window_size ** 2`` tokens at a time, each chunk checkpointed while gradients
        are recorded, so the 4C-wide hidden activations of the whole map are never held."""
        if self.mlp_chunk_size <= 0:
            return self._norm_mlp(x)
        parts = x.reshape(-1, x.shape[-1]).split(self.mlp_chunk_size * window_size ** 2)
        return torch.cat([checkpoint_if_grad_enabled(self._norm_mlp, part) for part in parts]).view(x.shape)

    def _norm_mlp(self, x: torch.Tensor) -> torch.Tensor:
        """(..., C) -> (..., C)."""
        return self.norm2(self.mlp(x))


class PatchMergingV2(nn.Module):
    """V2 patch merging: 2x2 neighbours concatenated (x0, x1, x2, x3), Linear 4C -> 2C (no bias), then LN(2C).

    Odd H or W is padded with zeros at the bottom/right first.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = FusedLinear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(2 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) -> (B, ceil(H/2), ceil(W/2), 2C)."""
        h, w = x.shape[1:3]
        if h % 2 or w % 2:
            x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.norm(self.reduction(x))


def effective_window(height: SizeLike, width: SizeLike, window_size: int) -> Tuple[SizeLike, SizeLike]:
    """The official shrink rule: a map not larger than the window is one window, without shift.

    Args:
        height, width: the stage's map size; ints, or 0-d tensors while the ONNX exporter traces, where
            the rule becomes tensor ops, so that one graph holds for maps on both sides of the window.
        window_size: the stage's window.

    Returns:
        (window, shift): the window never shrinks below 2 (a 1-token window has no relative positions;
        the map is padded instead); the shift of the shifted blocks is ``window_size // 2``, or 0 for a
        shrunken window.
    """
    if isinstance(height, torch.Tensor) or isinstance(width, torch.Tensor):
        side = torch.minimum(torch.as_tensor(height), torch.as_tensor(width))
        shrunk = side <= window_size
        return (torch.where(shrunk, side.clamp(min=min(2, window_size)), window_size),
                torch.where(shrunk, 0, window_size // 2))
    side = min(height, width)
    if side <= window_size:
        return max(side, min(2, window_size)), 0
    return window_size, window_size // 2


class SwinStageV2(nn.Module):
    """One stage: ``depth`` blocks alternating unshifted / shifted windows, then optional patch merging.

    Keys match the official ``layers.{i}``: ``blocks.{j}.*`` and ``downsample.*`` (at the end of the stage).

    Args:
        dim: channels C of the stage.
        depth: number of blocks.
        num_heads: attention heads.
        window_size: window of the stage (square).
        pretrained_window_size: window the stage's position-bias MLPs were trained with, 0 for none.
        drop_path_rates: one stochastic depth rate per block.
        downsample: end the stage with :class:`PatchMergingV2`.
        mask_padding: stop real tokens from attending to the zero padding of border windows.
        with_cp: non-reentrant activation checkpointing of every block while training.
        extra_norms: per block, whether it ends with the extra norm ``norm3`` (empty: none); the
            backbone chooses them with ``arch.has_extra_norm``.
        **block_kwargs: passed to :class:`SwinBlockV2` (mlp_ratio, qkv_bias, drop_rate, attn_drop_rate,
            attn_impl, attn_chunk_size, mlp_chunk_size).
    """

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int, pretrained_window_size: int,
                 drop_path_rates: Sequence[float], downsample: bool, mask_padding: bool = False,
                 with_cp: bool = False, extra_norms: Sequence[bool] = (), **block_kwargs: Any) -> None:
        super().__init__()
        self.window_size = window_size
        self.mask_padding = mask_padding
        self.with_cp = with_cp
        pws = (pretrained_window_size, pretrained_window_size)
        extra_norms = list(extra_norms) or [False] * depth
        if len(extra_norms) != depth:
            raise ValueError(f'extra_norms needs one flag per block ({depth}), got {len(extra_norms)}')
        self.blocks = nn.ModuleList(
            SwinBlockV2(dim, num_heads, pws, drop_path_rate=drop_path_rates[j], extra_norm=extra_norms[j],
                        **block_kwargs)
            for j in range(depth))
        self.downsample = PatchMergingV2(dim) if downsample else None

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(B, H, W, C) -> (stage output (B, H, W, C), merged (B, ceil(H/2), ceil(W/2), 2C) or None)."""
        h, w = x.shape[1:3]
        window, shift = effective_window(h, w, self.window_size)
        padded = (h + (-h) % window, w + (-w) % window)
        pad = (padded[0] - h, padded[1] - w)
        masks: List[Optional[torch.Tensor]] = [
            attention_mask(padded, (window, window), (s, s), pad, self.mask_padding, x.device) for s in (0, shift)]
        for j, block in enumerate(self.blocks):
            shift_j, mask = (shift, masks[1]) if j % 2 else (0, masks[0])
            if self.with_cp and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, window, shift_j, mask, use_reentrant=False)
            else:
                x = block(x, window, shift_j, mask)
        return x, (self.downsample(x) if self.downsample is not None else None)
