"""Linear layers that run as one oneDNN call (bias and GELU fused) in CPU inference.

``F.linear`` on the CPU copies the broadcast bias into its output before the matrix product
(``addmm`` with beta = 1), and ``nn.GELU`` then makes one more pass over the 4C-wide MLP hidden
activations. oneDNN's inner product (``torch.ops.mkldnn._linear_pointwise``, the kernel that
torch.compile's CPU backend emits for these patterns) adds the bias and applies the exact (erf)
GELU in its epilogue. It has no backward, so it is taken only where no gradient is recorded; it
gives the same values as ``F.linear`` (+ ``F.gelu``) up to fp32 summation order.
"""
import contextlib
from typing import Iterator, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

_FUSED = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, '_linear_pointwise')
ACTIVATIONS = ('none', 'gelu')


def can_fuse(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None) -> bool:
    """Whether :func:`fused_linear` takes the oneDNN kernel: fp32 CPU tensors, no gradient recorded
    for any of them, not inside torch.compile (which makes its own fusions)."""
    tensors = (x, weight) if bias is None else (x, weight, bias)
    return (_FUSED and x.device.type == 'cpu' and all(t.dtype == torch.float32 for t in tensors)
            and not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))
            and not torch.compiler.is_compiling())


def fused_linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None,
                 activation: str = 'none') -> torch.Tensor:
    """``x @ weight.T + bias``, then exact GELU if ``activation == 'gelu'``.

    Args:
        x: (..., in_features).
        weight: (out_features, in_features).
        bias: (out_features,) or None.
        activation: ``'none'`` or ``'gelu'`` (erf form, as ``nn.GELU()``).

    Returns:
        (..., out_features): one oneDNN call where :func:`can_fuse` allows, else ``F.linear`` (+ ``F.gelu``).
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f'activation must be one of {ACTIVATIONS}, got {activation!r}')
    if can_fuse(x, weight, bias):
        # algorithm: 'none' selects the erf GELU ('tanh' would be the approximation); '' for no activation.
        return torch.ops.mkldnn._linear_pointwise(x.contiguous(), weight, bias, activation, [],
                                                  'none' if activation == 'gelu' else '')
    out = F.linear(x, weight, bias)
    return F.gelu(out) if activation == 'gelu' else out


@contextlib.contextmanager
def fused_linears(enabled: bool) -> Iterator[None]:
    """Within the block, take the oneDNN kernel where possible (``True``, the default outside) or
    never (``False``: plain ``F.linear`` + ``F.gelu``, e.g. to compare the two)."""
    global _FUSED
    saved = _FUSED
    _FUSED = enabled and saved
    try:
        yield
    finally:
        _FUSED = saved


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters, same state-dict keys) that runs :func:`fused_linear`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in_features) -> (..., out_features)."""
        return fused_linear(x, self.weight, self.bias)
