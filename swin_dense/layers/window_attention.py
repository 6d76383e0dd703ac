"""Scaled cosine window attention of Swin Transformer V2 (paper section 3.2).

``attn = cos(q, k) * exp(clamp(logit_scale, max=ln 100)) + 16 * sigmoid(cpb) + mask``, softmax over keys.

Two paths compute it:

* ``'eager'``: the official op order (normalize, multiply by the scale, add the bias, add the
  mask, softmax), the reference.
* ``'sdpa'``: ``F.scaled_dot_product_attention`` with the scale folded into the normalised queries
  and ``16 * sigmoid(bias) + mask`` as the additive mask (``scale=1``); equal to the eager path within
  fp32 rounding (timings: docs/benchmarks.md).

While the ONNX exporter traces (``torch.jit.is_tracing()``, docs/deploy.md) the eager path is
recorded, and the position bias and the bias + mask sum are computed in the graph instead of taken
from the per-size caches.

The projections are called as modules (``self.qkv(x)``, ``self.proj(x)``), so forward hooks and
wrappers around them (LoRA, quantisation, FSDP units) take part. The q and v biases are the
attention's own parameters (official names) and are added to ``qkv``'s output.

The cosine logits are always computed in float32 (under fp16/bf16 autocast too): fp16 rounds
``F.normalize``'s eps to 0, so an all-zero padded token would give 0/0 = NaN, and logits of up to
116 lose most of their precision in half types.
"""
import math
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .activation_checkpoint import checkpoint_if_grad_enabled
from .linear import FusedLinear
from .position_bias import at_least_fp32, build_cpb_mlp, continuous_position_bias

LOGIT_SCALE_MAX = math.log(1.0 / 0.01)
ATTN_IMPLS = ('sdpa', 'eager')
NORM_EPS = 1e-12  # F.normalize's


class WindowAttentionV2(nn.Module):
    """Multi-head scaled cosine self-attention within windows, with continuous position bias.

    Parameter names are the official ones (``qkv``, ``q_bias``, ``v_bias``, ``logit_scale``,
    ``cpb_mlp``, ``proj``), so official checkpoints load as they are.

    Args:
        dim: channels C.
        num_heads: heads nH; C must be divisible by nH.
        pretrained_window_size: window the position-bias MLP was trained with, (0, 0) for none.
        qkv_bias: learn q and v biases (the k bias is always zero).
        attn_drop_rate: dropout on the attention weights.
        proj_drop_rate: dropout after the output projection.
        attn_impl: ``'sdpa'`` (fused, default) or ``'eager'`` (the official op order).
        chunk_size: windows per attention call; 0 runs all windows at once. Bounds peak memory at
            very large inputs (sequential self-attention of the SwinV2 paper).
    """

    def __init__(self, dim: int, num_heads: int, pretrained_window_size: Tuple[int, int] = (0, 0),
                 qkv_bias: bool = True, attn_drop_rate: float = 0.0, proj_drop_rate: float = 0.0,
                 attn_impl: str = 'sdpa', chunk_size: int = 0) -> None:
        super().__init__()
        if attn_impl not in ATTN_IMPLS:
            raise ValueError(f'attn_impl must be one of {ATTN_IMPLS}, got {attn_impl!r}')
        self.dim = dim
        self.num_heads = num_heads
        self.pretrained_window_size = tuple(pretrained_window_size)
        self.attn_impl = attn_impl
        self.chunk_size = chunk_size
        self.logit_scale = nn.Parameter(torch.full((num_heads, 1, 1), math.log(10.0)))
        self.cpb_mlp = build_cpb_mlp(num_heads)
        self.qkv = FusedLinear(dim, dim * 3, bias=False)
        if qkv_bias:
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        else:
            self.q_bias = None
            self.v_bias = None
        self.attn_drop = nn.Dropout(attn_drop_rate)
        self.proj = FusedLinear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop_rate)
        self._bias_cache = {}
        self._sdpa_mask_cache = None

    def position_bias(self, window_size: Tuple[int, int]) -> torch.Tensor:
        """``16 * sigmoid(cpb)`` of shape (nH, N, N); cached per window while no gradient is needed,
        computed in the graph while tracing for ONNX export."""
        if torch.is_grad_enabled() or torch.jit.is_tracing():
            self._bias_cache.clear()
            return continuous_position_bias(self.cpb_mlp, self.num_heads, window_size, self.pretrained_window_size)
        params = (self.cpb_mlp[0].weight, self.cpb_mlp[0].bias, self.cpb_mlp[2].weight)
        # storage and version of each parameter: model.to(dtype/device) replaces them, in-place updates bump them
        key = (tuple(window_size), tuple((p.data_ptr(), p.dtype, p._version) for p in params))
        bias = self._bias_cache.get(key)
        if bias is None:
            self._bias_cache.clear()
            bias = continuous_position_bias(self.cpb_mlp, self.num_heads, window_size, self.pretrained_window_size)
            self._bias_cache[key] = bias
        return bias

    def forward(self, x: torch.Tensor, window_size: Tuple[int, int],
                mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Attend within windows.

        Args:
            x: (B * nW, N, C) tokens of the windows, N = Wh * Ww; windows of one image contiguous.
            window_size: (Wh, Ww), the effective window.
            mask: (nW, N, N) additive mask (0 / -100) or None.

        Returns:
            (B * nW, N, C).
        """
        bias = self.position_bias(window_size)  # (nH, N, N), float32
        if self.chunk_size > 0:
            return self._sequential(x, bias, mask)
        return self._attend(x, bias, mask, cache_mask=True)

    def sdpa_mask(self, bias: torch.Tensor, mask: Optional[torch.Tensor], cache: bool = False) -> torch.Tensor:
        """``16 * sigmoid(bias) + mask`` of shape (nW, nH, N, N), or (1, nH, N, N) without a mask.

        Args:
            bias: (nH, N, N) from :meth:`position_bias`.
            mask: (nW, N, N) or None.
            cache: keep the sum (one entry per module) while no gradient is needed; the bias and the
                masks come from caches, so the same objects mean the same input size.
        """
        if mask is None:
            return bias.unsqueeze(0)
        if not cache or torch.is_grad_enabled() or torch.jit.is_tracing():
            return bias.unsqueeze(0) + mask.unsqueeze(1)
        cached = self._sdpa_mask_cache
        if cached is None or cached[0] is not bias or cached[1] is not mask:
            cached = (bias, mask, bias.unsqueeze(0) + mask.unsqueeze(1))
            self._sdpa_mask_cache = cached
        return cached[2]

    def _sequential(self, x: torch.Tensor, bias: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        """Sequential attention (SwinV2 paper, section 3.4): ``chunk_size`` windows at a time.

        Each chunk computes its own q/k/v, bias + mask rows, attention and output projection, so
        nothing larger than a chunk's is ever held. While gradients are recorded each chunk is
        checkpointed (recomputed in backward): otherwise autograd would keep every chunk's q/k/v
        and attention weights, and chunking would save nothing in training.

        Args:
            x: (B * nW, N, C).
            bias: (nH, N, N) position bias.
            mask: (nW, N, N) or None.

        Returns:
            (B * nW, N, C).
        """
        b_ = x.shape[0]
        nw = 1 if mask is None else mask.shape[0]
        chunk = _chunk_length(b_, self.chunk_size, nw)
        outs = [checkpoint_if_grad_enabled(self._attend, x[i:i + chunk], bias, _mask_rows(mask, i, chunk))
                for i in range(0, b_, chunk)]
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    def _attend(self, x: torch.Tensor, bias: torch.Tensor, mask: Optional[torch.Tensor],
                cache_mask: bool = False) -> torch.Tensor:
        """qkv projection, attention and output projection of (B', N, C) windows.

        Args:
            x: (B', N, C), whole images' windows or a chunk within one image.
            bias: (nH, N, N).
            mask: (nW, N, N) or the chunk's (B', N, N) rows, or None.
            cache_mask: ``'sdpa'``: keep bias + mask for the next call (see :meth:`sdpa_mask`).

        Returns:
            (B', N, C).
        """
        b_, n, c = x.shape
        qk, v = self._project_qkv(x)
        scale = at_least_fp32(torch.clamp(self.logit_scale, max=LOGIT_SCALE_MAX).exp())  # (nH, 1, 1)
        if self.attn_impl == 'eager' or torch.jit.is_tracing():
            # exported: the eager op order; the SDPA path's per-image loop would fix the batch in the graph
            out = self._eager(qk, v, scale, bias, mask)
        else:
            attn_mask = self.sdpa_mask(bias, mask, cache_mask)  # (nW or 1, nH, N, N)
            # q is scaled by exp(logit_scale), k by 1: one multiply normalises both and folds the scale in.
            qk_scale = torch.stack((scale.view(-1, 1), torch.ones_like(scale.view(-1, 1))))  # (2, nH, 1)
            # With a mask, one image's windows per call: the mask's batch then matches q's exactly,
            # which keeps SDPA on its fused CPU kernel (a broadcast 5-D call falls back to math).
            step = attn_mask.shape[0] if attn_mask.shape[0] > 1 else b_
            outs = [self._sdpa(qk[i:i + step], v[i:i + step], qk_scale, attn_mask) for i in range(0, b_, step)]
            out = outs[0] if len(outs) == 1 else torch.cat(outs)
        out = out.to(x.dtype).transpose(1, 2).reshape(b_, n, c)
        return self.proj_drop(self.proj(out))

    def _project_qkv(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The qkv projection of (B', N, C) windows: ``self.qkv(x)``, then the q bias (with a zero k
        bias) added to its q|k half and the v bias to its v third. The sums are the values of one
        ``F.linear`` with the concatenated bias, and give q|k one contiguous tensor of its own, the
        layout :meth:`_sdpa` normalises in.

        Returns:
            qk (B', N, 2, nH, hd) and v (B', N, nH, hd).
        """
        b_, n, c = x.shape
        qkv = self.qkv(x)  # (B', N, 3C)
        qk, v = qkv[..., :2 * c], qkv[..., 2 * c:]
        if self.q_bias is not None:
            qk = qk + torch.cat((self.q_bias, torch.zeros_like(self.q_bias)))
            v = v + self.v_bias
        return qk.view(b_, n, 2, self.num_heads, -1), v.view(b_, n, self.num_heads, -1)

    def _eager(self, qk: torch.Tensor, v: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor,
               mask: Optional[torch.Tensor]) -> torch.Tensor:
        """The official op order on qk (B', N, 2, nH, hd) and v (B', N, nH, hd) in float32;
        returns (B', nH, N, hd)."""
        b_, n, _, nh, _ = qk.shape
        with torch.autocast(device_type=qk.device.type, enabled=False):
            q, k = at_least_fp32(qk).permute(2, 0, 3, 1, 4).unbind(0)  # each (B', nH, N, hd)
            v = at_least_fp32(v).transpose(1, 2)
            attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
            attn = attn * scale + bias.unsqueeze(0)
            if mask is not None:
                nw = mask.shape[0]
                attn = attn.view(b_ // nw, nw, nh, n, n) + mask.unsqueeze(1).unsqueeze(0)
                attn = attn.view(b_, nh, n, n)
            attn = self.attn_drop(attn.softmax(dim=-1))
            return attn @ v

    def _sdpa(self, qk: torch.Tensor, v: torch.Tensor, qk_scale: torch.Tensor,
              attn_mask: torch.Tensor) -> torch.Tensor:
        """Fused attention of qk (B', N, 2, nH, hd) and v (B', N, nH, hd) in float32 with the logit
        scale folded into q.

        q and k are normalised together in their own layout, where the reduced dimension is
        contiguous, rather than by two ``F.normalize`` calls on permuted views.
        ``qk_scale`` is (2, nH, 1): exp(logit_scale) for q, 1 for k. ``attn_mask`` is (B', nH, N, N)
        or (1, nH, N, N). Returns (B', nH, N, hd).
        """
        with torch.autocast(device_type=qk.device.type, enabled=False):
            qk = at_least_fp32(qk)
            norm = torch.linalg.vector_norm(qk, dim=-1, keepdim=True).clamp_min(NORM_EPS)
            q, k = (qk * (qk_scale / norm)).transpose(1, 3).unbind(2)  # each (B', nH, N, hd)
            v = at_least_fp32(v).transpose(1, 2)
            if q.device.type == 'cpu' and attn_mask.requires_grad:
                # SDPA's CPU kernels take no mask gradient: it would run its math fallback, whose
                # -inf-safe softmax adds passes over the logits. The same math is written out instead.
                attn = self.attn_drop((q @ k.transpose(-2, -1)).add_(attn_mask).softmax(dim=-1))
                return attn @ v
            dropout = self.attn_drop.p if self.training else 0.0
            return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout, scale=1.0)


def _chunk_length(num_windows: int, chunk_size: int, windows_per_image: int) -> int:
    """Windows per chunk in sequential mode: at most ``chunk_size``; with a mask (``windows_per_image``
    > 1) a divisor of ``windows_per_image``, so every chunk lies within one image and takes
    consecutive mask rows."""
    if windows_per_image == 1:
        return min(chunk_size, num_windows)
    return max(d for d in range(1, min(chunk_size, windows_per_image) + 1) if windows_per_image % d == 0)


def _mask_rows(mask: Optional[torch.Tensor], start: int, length: int) -> Optional[torch.Tensor]:
    """The rows of an (nW, N, N) mask that a chunk of windows starting at ``start`` needs."""
    if mask is None or length >= mask.shape[0]:
        return mask
    offset = start % mask.shape[0]
    return mask[offset:offset + length]
