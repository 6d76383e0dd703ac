"""``FusedLinear``: ``nn.Linear`` whose bias is added inside one oneDNN call in CPU inference.

``F.linear`` on the CPU copies the broadcast bias into its output before the matrix product
(``addmm`` with beta = 1). oneDNN's inner product (``torch.ops.mkldnn._linear_pointwise``, the
kernel that torch.compile's CPU backend emits for this pattern) adds the bias in its epilogue. It
has no backward, so it is taken only where no gradient is recorded; it gives the same values as
``F.linear`` up to fp32 summation order. Figures: docs/benchmarks.md.

Whether a layer may take the kernel is a flag of the layer (:attr:`FusedLinear.fused`), not a
global: ``SwinTransformerV2.set_fused_linear(False)`` turns it off for every layer of a backbone.
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

#: whether this torch build has the oneDNN kernel at all (x86 builds with mkldnn do)
ONEDNN_LINEAR = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, '_linear_pointwise')


def can_fuse(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None) -> bool:
    """Whether :func:`fused_linear` takes the oneDNN kernel: the kernel exists, fp32 CPU tensors, no
    gradient recorded for any of them, not inside torch.compile (which makes its own fusions)."""
    tensors = (x, weight) if bias is None else (x, weight, bias)
    return (ONEDNN_LINEAR and x.device.type == 'cpu' and all(t.dtype == torch.float32 for t in tensors)
            and not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))
            and not torch.compiler.is_compiling())


def fused_linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None,
                 fused: bool = True) -> torch.Tensor:
    """``x @ weight.T + bias``.

    Args:
        x: (..., in_features).
        weight: (out_features, in_features).
        bias: (out_features,) or None.
        fused: take the oneDNN kernel where :func:`can_fuse` allows (``False``: always ``F.linear``).

    Returns:
        (..., out_features).
    """
    if fused and can_fuse(x, weight, bias):
        # attr 'none': no fused activation; algorithm '' (only read for GELU).
        return torch.ops.mkldnn._linear_pointwise(x.contiguous(), weight, bias, 'none', [], '')
    return F.linear(x, weight, bias)


class FusedLinear(nn.Linear):
    """``nn.Linear`` (same parameters, same state-dict keys) that runs :func:`fused_linear`.

    Attributes:
        fused: take the oneDNN kernel in fp32 CPU inference (default ``True``); ``False`` runs
            ``F.linear`` always, e.g. to compare the two.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.fused = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in_features) -> (..., out_features)."""
        return fused_linear(x, self.weight, self.bias, self.fused)

    def extra_repr(self) -> str:
        return f'{super().extra_repr()}, fused={self.fused}'
