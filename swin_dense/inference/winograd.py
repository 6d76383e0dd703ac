"""Winograd 3x3 convolutions for inference mode: NNPACK's kernel for whole-image maps, our F(4x4, 3x3)
in PyTorch matrix products for batches of small maps.

A plain 3x3 stride-1 convolution becomes a :class:`WinogradConv2d`, which picks one of
:data:`ALGORITHMS` per input (:meth:`WinogradConv2d.algorithm`):

* ``'nnpack'``: maps of at least :data:`MIN_PIXELS` pixels (UPerNet's ``fpn_bottleneck`` and FPN
  convolutions, a detector's FPN and RPN convolutions) go one image at a time through
  ``torch._nnpack_spatial_convolution``. PyTorch then calls ``nnp_convolution_inference``, which picks
  NNPACK's 8 x 8 Winograd transform, F(6x6, 3x3), for stride-1 3x3 kernels (``select_algorithm`` in
  NNPACK's ``src/convolution-inference.c``): 64 instead of 324 multiplications per 6 x 6 output tile
  and channel pair.
* ``'f4x4'``: smaller maps with at least :data:`MIN_TILES` 4 x 4 output tiles in the batch, in and
  out of a layer with at least :data:`MIN_CHANNELS` channels (the RoI heads' 7 x 7 and 14 x 14 maps,
  UPerNet's 1/32-scale maps) go through :func:`swin_dense.inference.winograd_f4.conv3x3`, F(4x4, 3x3)
  in batched matrix products, where NNPACK (one image at a time, or its batched mode) is slower than
  the direct convolution.
* ``'direct'``: everything else, bit for bit as ``nn.Conv2d``: fewer tiles or channels, other dtypes
  or devices, and tracing (so ONNX export sees a plain convolution).

The rounding differs from a direct convolution's: on random inputs of 64 to 2048 channels both
Winograd algorithms were within 1.8e-5 of the largest output from the float64 convolution, the direct
convolution within 5.9e-6 (``tools/bench_winograd.py``, docs/benchmarks.md section 6).
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn

from .winograd_f4 import conv3x3, tile_grid, transform_weight

ALGORITHMS = ('direct', 'nnpack', 'f4x4')

# the measured crossover between NNPACK and F(4x4, 3x3) on one image (tools/bench_winograd.py,
# docs/benchmarks.md section 6): at 28 x 28 and up NNPACK was about as fast as F(4x4, 3x3) or faster
# (1.83x / 1.62x, 1.94x / 2.00x, 2.02x / 2.12x the direct convolution at 28 x 28 with 256, 512 and 2048
# input channels; 3.07x / 1.08x at 128 x 128), below it F(4x4, 3x3) faster in five of six cases
# (1.16x / 1.28x at 16 x 16 with 256 channels, 1.67x / 1.49x at 24 x 24)
MIN_PIXELS = 28 * 28

# the fewest 4 x 4 output tiles for F(4x4, 3x3): with 16 (four 7 x 7 RoI maps, one 14 x 14 or 16 x 16
# map) it was 1.04-1.28x the direct convolution at 256 channels and 1.57x and 1.93x at 512 and 2048; RoI
# batches of 32 tiles and more 1.18-1.46x at 256 channels; 8 tiles and fewer 0.76-0.77x
# (docs/benchmarks.md section 6)
MIN_TILES = 16

# the fewest input and output channels for F(4x4, 3x3): its transforms cost per channel, its matrix
# product per channel pair; on channels-last RoI batches it was 0.68-0.94x the direct convolution with
# 64 and 96 channels, 1.05-1.08x with 128 and 1.28-1.46x with 192 and 256 (docs/benchmarks.md section 6)
MIN_CHANNELS = 128


def nnpack_available() -> bool:
    """Whether this PyTorch build has NNPACK and it initialises on this CPU.
    The check also initialises NNPACK, which its convolution needs before the first call."""
    return hasattr(torch, '_nnpack_spatial_convolution') and torch.backends.nnpack.is_available()


def eligible(conv: nn.Module) -> bool:
    """Whether ``conv`` is a plain ``nn.Conv2d`` that both Winograd algorithms compute: 3 x 3 kernel,
    stride 1, no dilation, one group, zero padding of at most 2 pixels (NNPACK's limit)."""
    return (type(conv) is nn.Conv2d and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
            and conv.dilation == (1, 1) and conv.groups == 1 and conv.padding_mode == 'zeros'
            and isinstance(conv.padding, tuple) and all(p <= 2 for p in conv.padding))


def output_tiles(shape: Tuple[int, ...], padding: Tuple[int, int]) -> int:
    """The 4 x 4 output tiles that F(4x4, 3x3) computes for an input of ``shape`` (N, C, H, W)."""
    _, _, tiles_h, tiles_w = tile_grid(shape[-2], shape[-1], padding)
    return shape[0] * tiles_h * tiles_w


class WinogradConv2d(nn.Conv2d):
    """An :func:`eligible` ``nn.Conv2d`` that computes each float32 CPU input with the algorithm
    :meth:`algorithm` picks for it.

    Shapes: input (N, C_in, H, W), output (N, C_out, H + 2p - 2, W + 2p - 2) for padding p, as
    ``nn.Conv2d``; NNPACK's output is contiguous (NCHW), F(4x4, 3x3)'s channels-last.
    """

    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> 'WinogradConv2d':
        """A ``WinogradConv2d`` sharing ``conv``'s weight and bias parameters."""
        new = cls(conv.in_channels, conv.out_channels, 3, padding=conv.padding, bias=conv.bias is not None,
                  device='meta')
        new.weight, new.bias = conv.weight, conv.bias
        new.train(conv.training)
        return new

    def algorithm(self, input: torch.Tensor) -> str:
        """Which of :data:`ALGORITHMS` computes ``input``: see the module's docstring."""
        if (input.dim() != 4 or input.dtype != torch.float32 or input.device.type != 'cpu'
                or torch.jit.is_tracing() or torch.compiler.is_compiling()):
            return 'direct'
        if input.shape[-2] * input.shape[-1] >= MIN_PIXELS:
            return 'nnpack' if nnpack_available() else 'direct'
        if (min(self.in_channels, self.out_channels) >= MIN_CHANNELS
                and output_tiles(input.shape, self.padding) >= MIN_TILES):
            return 'f4x4'
        return 'direct'

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor,
                      bias: Optional[torch.Tensor]) -> torch.Tensor:
        return getattr(self, self.algorithm(input))(input)

    def nnpack(self, input: torch.Tensor) -> torch.Tensor:
        """The convolution of a float32 CPU ``input`` (N, C_in, H, W) through NNPACK, one image at a
        time (its batched mode measured slower at these sizes), whatever the map size."""
        padding, stride = list(self.padding), [1, 1]
        images = [torch._nnpack_spatial_convolution(image, self.weight, self.bias, padding, stride)
                  for image in input.split(1)]
        return images[0] if len(images) == 1 else torch.cat(images)

    def f4x4(self, input: torch.Tensor) -> torch.Tensor:
        """The convolution of a float32 ``input`` (N, C_in, H, W) through F(4x4, 3x3), whatever the
        map size. The transformed weight is computed once and again after the weight changes."""
        key = (self.weight.data_ptr(), self.weight._version)
        if getattr(self, '_f4x4_key', None) != key:
            self._f4x4_weight, self._f4x4_key = transform_weight(self.weight), key
        return conv3x3(input, self._f4x4_weight, self.bias, self.padding)

    def direct(self, input: torch.Tensor) -> torch.Tensor:
        """The convolution of ``input`` as ``nn.Conv2d`` computes it, whatever the map size."""
        return super()._conv_forward(input, self.weight, self.bias)


def use_winograd(model: nn.Module) -> int:
    """Replace every :func:`eligible` convolution of ``model`` in place by a :class:`WinogradConv2d`
    sharing its parameters. Returns how many were replaced."""
    targets = [(parent, name, child) for parent in model.modules()
               for name, child in parent.named_children() if eligible(child)]
    for parent, name, child in targets:
        setattr(parent, name, WinogradConv2d.from_conv(child))
    return len(targets)
