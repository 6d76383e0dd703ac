"""Winograd's F(4x4, 3x3) convolution in PyTorch matrix products, for batches of small maps (the RoI
heads' 7 x 7 and 14 x 14 maps), where NNPACK's per-image kernel is slower than the direct convolution.

Each 4 x 4 output tile comes from a 6 x 6 input tile: ``Y = A^T [(G g G^T) * (B^T d B)] A`` (Lavin and
Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016, section 4.2, with the
interpolation points 0, +-1, +-2 and infinity). Per channel pair a 4 x 4 tile costs 36 multiplications
instead of 144; a 7 x 7 map takes 2 x 2 tiles (144 instead of 441 for the direct convolution), a
14 x 14 map 4 x 4 tiles (576 instead of 1764). The 36 products of the transformed input with the
transformed weight are one batched matrix product, ``(36, tiles, C_in) @ (36, C_in, C_out)``; the
transforms are matrix products with the 6 x 6 and 4 x 6 matrices below, one side after the other.
The images go :data:`TILES_PER_STEP` tiles at a time, so that the transformed tiles stay in the cache.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

# Lavin and Gray's F(4x4, 3x3) matrices (points 0, 1, -1, 2, -2, infinity)
B_T = torch.tensor([[4., 0., -5., 0., 1., 0.],
                    [0., -4., -4., 1., 1., 0.],
                    [0., 4., -4., -1., 1., 0.],
                    [0., -2., -1., 2., 1., 0.],
                    [0., 2., -1., -2., 1., 0.],
                    [0., 4., 0., -5., 0., 1.]])
G = torch.tensor([[1 / 4, 0., 0.],
                  [-1 / 6, -1 / 6, -1 / 6],
                  [-1 / 6, 1 / 6, -1 / 6],
                  [1 / 24, 1 / 12, 1 / 6],
                  [1 / 24, -1 / 12, 1 / 6],
                  [0., 0., 1.]], dtype=torch.float64)
A_T = torch.tensor([[1., 1., 1., 1., 1., 0.],
                    [0., 1., -1., 2., -2., 0.],
                    [0., 1., 1., 4., 4., 0.],
                    [0., 1., -1., 8., -8., 1.]])

# tiles transformed and multiplied per step: more make the matrix product faster and push the
# transformed tiles out of the cache. For 1000 x 256 x 7 x 7 and 100 x 256 x 14 x 14 maps on one thread,
# 128 was within 8 % of the fastest of 64 to 512 in three runs (tools/bench_winograd.py,
# docs/benchmarks.md section 6), 64 and 512 up to 14 % and 25 % slower
TILES_PER_STEP = 128


def transform_weight(weight: torch.Tensor) -> torch.Tensor:
    """``G g G^T`` for every kernel ``g`` of ``weight`` (C_out, C_in, 3, 3), computed in float64.
    Returns (36, C_in, C_out) float32, the right-hand side of :func:`conv3x3`'s batched product."""
    c_out, c_in = weight.shape[:2]
    u = torch.einsum('ik,ockl,jl->ijco', G, weight.detach().double(), G)
    return u.reshape(36, c_in, c_out).float().contiguous()


def tile_grid(height: int, width: int, padding: Tuple[int, int]) -> Tuple[int, int, int, int]:
    """For an (H, W) input map with zero ``padding`` (p_h, p_w): the output size (H + 2 p_h - 2,
    W + 2 p_w - 2) and the 4 x 4 output tiles that cover it, (out_h, out_w, tiles_h, tiles_w)."""
    out_h, out_w = height + 2 * padding[0] - 2, width + 2 * padding[1] - 2
    return out_h, out_w, -(-out_h // 4), -(-out_w // 4)


def conv3x3(input: torch.Tensor, u: torch.Tensor, bias: Optional[torch.Tensor],
            padding: Tuple[int, int], tiles_per_step: int = TILES_PER_STEP) -> torch.Tensor:
    """The stride-1 3 x 3 convolution of a float32 ``input`` (N, C_in, H, W) with zero ``padding``
    (p_h, p_w), whose weight :func:`transform_weight` gave as ``u`` (36, C_in, C_out), whole images
    of about ``tiles_per_step`` output tiles at a time.

    Returns (N, C_out, H + 2 p_h - 2, W + 2 p_w - 2), stored channels-last.
    """
    n_images, c_in, height, width = input.shape
    c_out = u.shape[-1]
    out_h, out_w, tiles_h, tiles_w = tile_grid(height, width, padding)
    # zero padding up to whole tiles: 4 t + 2 input pixels for t tiles
    pads = (0, 0, padding[1], 4 * tiles_w + 2 - width - padding[1], padding[0], 4 * tiles_h + 2 - height - padding[0])
    b_t, a_t = B_T.to(input.device), A_T.to(input.device)
    out = torch.empty(n_images, out_h, out_w, c_out, device=input.device)
    images_per_step = max(1, tiles_per_step // (tiles_h * tiles_w))
    for start in range(0, n_images, images_per_step):
        x = F.pad(input[start:start + images_per_step].permute(0, 2, 3, 1), pads)  # (n, H', W', C_in)
        n = x.shape[0]
        tiles = n * tiles_h * tiles_w
        # (6, 6, n, tiles_h, tiles_w, C_in): the 6 x 6 input tiles, 4 pixels apart
        d = x.unfold(1, 6, 4).unfold(2, 6, 4).permute(4, 5, 0, 1, 2, 3).reshape(6, 6 * tiles * c_in)
        v = torch.matmul(b_t, torch.mm(b_t, d).view(6, 6, tiles * c_in)).view(36, tiles, c_in)
        m = torch.bmm(v, u).view(6, 6 * tiles * c_out)
        y = torch.matmul(a_t, torch.mm(a_t, m).view(4, 6, tiles * c_out))
        # (4, 4, n, tiles_h, tiles_w, C_out) -> (n, 4 tiles_h, 4 tiles_w, C_out)
        y = y.view(4, 4, n, tiles_h, tiles_w, c_out).permute(2, 3, 0, 4, 1, 5)
        y = y.reshape(n, 4 * tiles_h, 4 * tiles_w, c_out)[:, :out_h, :out_w]
        if bias is None:
            out[start:start + n] = y
        else:
            torch.add(y, bias, out=out[start:start + n])
    return out.permute(0, 3, 1, 2)
