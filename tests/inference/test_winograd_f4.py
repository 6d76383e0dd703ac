"""F(4x4, 3x3) in matrix products (swin_dense/inference/winograd_f4.py): the transform matrices, and
the convolution against float64 at the RoI heads' sizes, other paddings, and the tile and step edges."""
import pytest
import torch
import torch.nn.functional as F

from swin_dense.inference import winograd_f4
from swin_dense.inference.winograd_f4 import A_T, B_T, G, conv3x3, transform_weight

# relative to the output's largest value: measured up to 1.4e-5 on random layers of 64 to 2048 channels
# (docs/benchmarks.md, section 6), less with these few channels; a wrong transform entry, a tile off by
# one pixel or a missing bias is off by O(1)
REL_TOL = 5e-5


def test_the_matrices_compute_four_outputs_of_a_1d_correlation_exactly():
    gen = torch.Generator().manual_seed(0)
    d, g = torch.randn(6, dtype=torch.float64, generator=gen), torch.randn(3, dtype=torch.float64, generator=gen)
    y = A_T.double() @ ((G @ g) * (B_T.double() @ d))
    assert torch.allclose(y, torch.stack([d[i:i + 3] @ g for i in range(4)]), rtol=0, atol=1e-12)


def test_transform_weight_shape():
    u = transform_weight(torch.randn(5, 3, 3, 3))
    assert u.shape == (36, 3, 5) and u.dtype == torch.float32 and u.is_contiguous()


@pytest.mark.parametrize('shape,padding,bias', [
    ((100, 32, 7, 7), (1, 1), True),    # box-head RoI maps: 400 tiles, two steps of 64 images
    ((20, 16, 14, 14), (1, 1), True),   # mask-head RoI maps: 16 tiles each
    ((5, 24, 9, 11), (0, 0), False),    # no padding, no bias, output 7 x 9: partly filled tiles
    ((3, 16, 13, 10), (2, 2), True),    # the largest padding: output 15 x 12
    ((4, 16, 7, 7), (0, 2), True),      # different padding per side
])
def test_conv3x3_gives_the_float64_convolution(shape, padding, bias):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen)
    weight = torch.randn(8, shape[1], 3, 3, generator=gen)
    b = torch.randn(8, generator=gen) if bias else None
    ref = F.conv2d(x.double(), weight.double(), None if b is None else b.double(), padding=padding)
    for layout in (torch.contiguous_format, torch.channels_last):
        got = conv3x3(x.contiguous(memory_format=layout), transform_weight(weight), b, padding)
        assert got.shape == ref.shape and got.dtype == torch.float32
        assert got.is_contiguous(memory_format=torch.channels_last)
        assert (got.double() - ref).abs().max() <= REL_TOL * ref.abs().max()


def test_steps_split_the_batch_without_changing_the_values(monkeypatch):
    gen = torch.Generator().manual_seed(0)
    x, weight, b = torch.randn(7, 8, 7, 7, generator=gen), torch.randn(4, 8, 3, 3, generator=gen), torch.randn(4)
    u = transform_weight(weight)
    whole = conv3x3(x, u, b, (1, 1))
    monkeypatch.setattr(winograd_f4, 'TILES_PER_STEP', 8)  # two images (4 tiles each) per step, 4 steps
    # the same products; a matrix library may block fewer rows another way, hence a rounding margin
    assert (conv3x3(x, u, b, (1, 1)) - whole).abs().max() <= 1e-6 * whole.abs().max()
