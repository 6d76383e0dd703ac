"""Winograd 3x3 convolutions for inference mode, through NNPACK (which PyTorch builds in).

A 3x3 convolution over a whole image's feature map (UPerNet's ``fpn_bottleneck`` and FPN convolutions,
FPN and RPN convolutions in a detector) runs through ``torch._nnpack_spatial_convolution``, one image
at a time: PyTorch then calls ``nnp_convolution_inference``, which picks NNPACK's 8 x 8 Winograd
transform, F(6x6, 3x3), for stride-1 3x3 kernels (``select_algorithm`` in NNPACK's
``src/convolution-inference.c``). Each 6 x 6 output tile costs 64 instead of 324 multiplications per
channel pair. The rounding differs from a direct convolution: the layers of the UPerNet T head
differed from float64 by 1.5e-6 to 1.4e-5 of their largest output, the direct convolution by 2.5e-7 to
8e-7 (``tools/bench_onnx.py --profile``, docs/benchmarks.md section 6). Maps smaller than
:data:`MIN_PIXELS` (RoI heads' 7 x 7 and 14 x 14 maps) and anything but float32 on the CPU keep
PyTorch's direct convolution, as does tracing (ONNX export sees a plain ``nn.Conv2d``).
"""
from typing import Optional

import torch
import torch.nn as nn

# the measured crossover (UPerNet T's head on one thread, docs/benchmarks.md section 6): NNPACK took
# 0.12-0.72x of the direct convolution's speed on maps up to 24 x 24 (1.51x for one layer), 0.94-1.17x
# at 28 x 28 and 1.04-3.05x from 32 x 32 up
MIN_PIXELS = 28 * 28


def nnpack_available() -> bool:
    """Whether this PyTorch build has NNPACK and it initialises on this CPU.
    The check also initialises NNPACK, which its convolution needs before the first call."""
    return hasattr(torch, '_nnpack_spatial_convolution') and torch.backends.nnpack.is_available()


def eligible(conv: nn.Module) -> bool:
    """Whether ``conv`` is a plain ``nn.Conv2d`` that NNPACK computes: 3 x 3 kernel, stride 1, no
    dilation, one group, zero padding of at most 2 pixels."""
    return (type(conv) is nn.Conv2d and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
            and conv.dilation == (1, 1) and conv.groups == 1 and conv.padding_mode == 'zeros'
            and isinstance(conv.padding, tuple) and all(p <= 2 for p in conv.padding))


class WinogradConv2d(nn.Conv2d):
    """An :func:`eligible` ``nn.Conv2d`` that computes float32 CPU maps of at least :data:`MIN_PIXELS`
    pixels one image at a time through NNPACK, and everything else as ``nn.Conv2d`` does.

    Shapes: input (N, C_in, H, W), output (N, C_out, H + 2p - 2, W + 2p - 2) for padding p, as
    ``nn.Conv2d``; the NNPACK output is contiguous (NCHW).
    """

    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> 'WinogradConv2d':
        """A ``WinogradConv2d`` sharing ``conv``'s weight and bias parameters."""
        new = cls(conv.in_channels, conv.out_channels, 3, padding=conv.padding, bias=conv.bias is not None,
                  device='meta')
        new.weight, new.bias = conv.weight, conv.bias
        new.train(conv.training)
        return new

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor,
                      bias: Optional[torch.Tensor]) -> torch.Tensor:
        if (input.dim() != 4 or input.dtype != torch.float32 or input.device.type != 'cpu'
                or input.shape[-2] * input.shape[-1] < MIN_PIXELS or torch.jit.is_tracing()
                or torch.compiler.is_compiling()):
            return super()._conv_forward(input, weight, bias)
        return self.winograd(input)

    def winograd(self, input: torch.Tensor) -> torch.Tensor:
        """The convolution of a float32 CPU ``input`` (N, C_in, H, W) through NNPACK, one image at a
        time (its batched mode measured slower at these sizes), whatever the map size."""
        padding, stride = list(self.padding), [1, 1]
        images = [torch._nnpack_spatial_convolution(image, self.weight, self.bias, padding, stride)
                  for image in input.split(1)]
        return images[0] if len(images) == 1 else torch.cat(images)

    def direct(self, input: torch.Tensor) -> torch.Tensor:
        """The convolution of ``input`` as ``nn.Conv2d`` computes it, whatever the map size."""
        return super()._conv_forward(input, self.weight, self.bias)


def use_winograd(model: nn.Module) -> int:
    """Replace every :func:`eligible` convolution of ``model`` in place by a :class:`WinogradConv2d`
    sharing its parameters. Returns how many were replaced; 0, changing nothing, where NNPACK is not
    available."""
    if not nnpack_available():
        return 0
    targets = [(parent, name, child) for parent in model.modules()
               for name, child in parent.named_children() if eligible(child)]
    for parent, name, child in targets:
        setattr(parent, name, WinogradConv2d.from_conv(child))
    return len(targets)
