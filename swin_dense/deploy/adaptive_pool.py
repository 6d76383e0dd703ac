"""Adaptive average pooling written as two matrix products, for graphs with a dynamic input size.

ONNX has no adaptive pooling, and the TorchScript exporter exports ``nn.AdaptiveAvgPool2d`` only for
a known input size (UPerNet's pyramid pooling module pools to 1, 2, 3 and 6 bins). PyTorch's bins are
``[floor(i * L / n), ceil((i + 1) * L / n))``; averaging over them is ``A_h @ x @ A_w^T`` with
``A[i, p] = 1 / |bin i|`` for p in bin i, and the matrices are built in the graph from the input's
shape.
"""
from typing import Tuple, Union

import torch
import torch.nn as nn


def bin_matrix(length: Union[int, torch.Tensor], bins: int, like: torch.Tensor) -> torch.Tensor:
    """(bins, length) averaging matrix of PyTorch's adaptive pooling bins along one axis."""
    i = torch.arange(bins, device=like.device)
    start = torch.div(i * length, bins, rounding_mode='floor')
    end = torch.div((i + 1) * length + bins - 1, bins, rounding_mode='floor')
    pos = torch.arange(length, device=like.device)
    member = (pos[None, :] >= start[:, None]) & (pos[None, :] < end[:, None])
    return member.to(like.dtype) / (end - start).to(like.dtype)[:, None]


def adaptive_avg_pool2d(x: torch.Tensor, output_size: Tuple[int, int]) -> torch.Tensor:
    """``F.adaptive_avg_pool2d`` of (B, C, H, W) -> (B, C, oh, ow), as matrix products."""
    h, w = x.shape[-2:]
    return bin_matrix(h, output_size[0], x) @ x @ bin_matrix(w, output_size[1], x).t()


class MatmulAdaptiveAvgPool2d(nn.Module):
    """Drop-in for ``nn.AdaptiveAvgPool2d`` with a fixed integer output size (see the module docstring)."""

    def __init__(self, output_size: Tuple[int, int]) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, oh, ow)."""
        return adaptive_avg_pool2d(x, self.output_size)


def replace_adaptive_pools(model: nn.Module) -> int:
    """Swap every ``nn.AdaptiveAvgPool2d`` of ``model`` for :class:`MatmulAdaptiveAvgPool2d`; returns
    how many. Raises ValueError for a pool with a ``None`` (keep the input's) output side."""
    count = 0
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.AdaptiveAvgPool2d):
                size = child.output_size
                size = (size, size) if isinstance(size, int) else tuple(size)
                if None in size:
                    raise ValueError(f'{name}.{child_name}: AdaptiveAvgPool2d{size} keeps an input side; '
                                     'only integer output sizes can be exported')
                setattr(module, child_name, MatmulAdaptiveAvgPool2d(size))
                count += 1
    return count
