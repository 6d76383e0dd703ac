"""Winograd 3x3 convolutions (swin_dense/inference/winograd.py): which convolutions are replaced, that
whole-image maps go through NNPACK and batches of small maps through F(4x4, 3x3), both giving the
direct convolution's values within Winograd's rounding, and that everything else keeps the direct
convolution bit for bit."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from swin_dense.inference import winograd
from swin_dense.inference.winograd import MIN_CHANNELS, MIN_TILES, WinogradConv2d, eligible, use_winograd

needs_nnpack = pytest.mark.skipif(not winograd.nnpack_available(), reason='this PyTorch build has no NNPACK')

# relative to the output's largest value: NNPACK's 8x8 Winograd tiles and F(4x4, 3x3) measured up to
# 1.8e-5 on random layers of 64 to 2048 channels (docs/benchmarks.md, section 6); a transform applied
# wrongly (a tile off by one, a missing bias) is off by O(1)
REL_TOL = 5e-5


def _count_calls(monkeypatch, owner, name: str) -> list:
    """Replace ``owner.name`` by a wrapper that records the shape of each call's first argument."""
    calls = []
    real = getattr(owner, name)

    def counted(x, *args):
        calls.append(tuple(x.shape))
        return real(x, *args)

    monkeypatch.setattr(owner, name, counted)
    return calls


@pytest.fixture
def nnpack_calls(monkeypatch):
    """The images that go through NNPACK."""
    return _count_calls(monkeypatch, torch, '_nnpack_spatial_convolution')


@pytest.fixture
def f4x4_calls(monkeypatch):
    """The batches that go through F(4x4, 3x3)."""
    return _count_calls(monkeypatch, winograd, 'conv3x3')


def _conv(cin: int, cout: int, padding: int = 1, bias: bool = True) -> nn.Conv2d:
    torch.manual_seed(0)
    return nn.Conv2d(cin, cout, 3, padding=padding, bias=bias).eval()


def _float64(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    return F.conv2d(x.double(), conv.weight.double(), None if conv.bias is None else conv.bias.double(),
                    padding=conv.padding)


@needs_nnpack
@pytest.mark.parametrize('shape,padding,bias', [
    ((1, 48, 28, 28), 1, True),     # the smallest map that goes through NNPACK
    ((3, 16, 37, 51), 1, True),     # a batch, sides not multiples of the 6x6 output tile
    ((2, 24, 30, 41), 0, False),    # no padding, no bias
    ((1, 16, 29, 33), 2, True),     # NNPACK's largest padding for a 3x3 kernel
])
def test_whole_image_maps_go_through_nnpack_with_the_direct_values(shape, padding, bias, nnpack_calls, f4x4_calls):
    conv = _conv(shape[1], 32, padding, bias)
    fast = WinogradConv2d.from_conv(conv)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = _float64(conv, x)
        got = fast(x)
    assert nnpack_calls == [(1, *shape[1:])] * shape[0] and f4x4_calls == []
    assert got.shape == ref.shape and got.dtype == torch.float32
    assert (got.double() - ref).abs().max() <= REL_TOL * ref.abs().max()


@pytest.mark.parametrize('shape,padding,bias', [
    ((100, 128, 7, 7), 1, True),    # box-head RoI maps
    ((4, 128, 14, 14), 0, False),   # 4 x 3 x 3 = 36 tiles, no padding, no bias
    ((1, 128, 27, 29), 2, True),    # one pixel short of MIN_PIXELS: F(4x4, 3x3), whether or not NNPACK is here
    ((1, 128, 15, 15), 1, True),    # MIN_TILES: 4 x 4 tiles
])
def test_batches_of_small_maps_go_through_f4x4_with_the_direct_values(shape, padding, bias, nnpack_calls,
                                                                      f4x4_calls):
    conv = _conv(shape[1], MIN_CHANNELS, padding, bias)
    fast = WinogradConv2d.from_conv(conv)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = _float64(conv, x)
        got = fast(x)
    assert f4x4_calls == [shape] and nnpack_calls == []
    assert got.shape == ref.shape and got.dtype == torch.float32
    assert (got.double() - ref).abs().max() <= REL_TOL * ref.abs().max()


def test_the_transformed_weight_follows_the_weight():
    conv = _conv(MIN_CHANNELS, MIN_CHANNELS)
    fast = WinogradConv2d.from_conv(conv)
    x = torch.randn(8, MIN_CHANNELS, 7, 7)
    with torch.no_grad():
        before = fast(x)
        conv.weight.mul_(2)  # in place, as load_state_dict copies
        conv.bias.zero_()
        after = fast(x)
        ref = _float64(conv, x)
    assert (after.double() - ref).abs().max() <= REL_TOL * ref.abs().max()
    assert not torch.allclose(after, before)


@pytest.mark.parametrize('shape,dtype,c_out', [
    ((3, 128, 7, 7), torch.float32, 128),      # 12 tiles, fewer than MIN_TILES
    ((1, 128, 12, 16), torch.float32, 128),    # 3 x 4 tiles
    ((100, 96, 7, 7), torch.float32, 128),     # fewer input channels than MIN_CHANNELS
    ((100, 128, 7, 7), torch.float32, 96),     # fewer output channels
    ((100, 128, 7, 7), torch.float64, 128),
    ((1, 32, 40, 40), torch.float64, 16),
])
def test_other_inputs_keep_the_direct_convolution(shape, dtype, c_out, nnpack_calls, f4x4_calls):
    conv = _conv(shape[1], c_out).to(dtype)
    fast = WinogradConv2d.from_conv(conv)
    x = torch.randn(shape, dtype=dtype, generator=torch.Generator().manual_seed(1))
    assert (winograd.output_tiles(shape, (1, 1)) < MIN_TILES or min(shape[1], c_out) < MIN_CHANNELS
            or dtype != torch.float32)
    with torch.no_grad():
        assert torch.equal(fast(x), conv(x))
    assert nnpack_calls == [] and f4x4_calls == []


@pytest.mark.parametrize('shape', [(1, 128, 32, 32), (100, 128, 7, 7)])
def test_tracing_sees_the_direct_convolution(shape, nnpack_calls, f4x4_calls):
    fast = WinogradConv2d.from_conv(_conv(128, 128))
    x = torch.randn(shape)
    with torch.no_grad():
        traced = torch.jit.trace(fast, x, check_trace=False)  # the check re-runs it untraced
    assert nnpack_calls == [] and f4x4_calls == []
    assert 'nnpack' not in str(traced.graph) and 'aten::_convolution' in str(traced.graph)


def test_parameters_are_shared_not_copied():
    conv = _conv(16, 8)
    fast = WinogradConv2d.from_conv(conv)
    assert fast.weight is conv.weight and fast.bias is conv.bias and not fast.training
    assert isinstance(fast, nn.Conv2d) and fast.padding == (1, 1)


def test_only_eligible_convolutions_are_replaced():
    model = nn.Sequential(
        nn.Conv2d(8, 8, 3, padding=1),                  # replaced
        nn.Sequential(nn.Conv2d(8, 8, 3, padding=1)),   # nested: replaced
        nn.Conv2d(8, 8, 1),                             # 1x1
        nn.Conv2d(8, 8, 3, stride=2, padding=1),
        nn.Conv2d(8, 8, 3, padding=2, dilation=2),
        nn.Conv2d(8, 8, 3, padding=1, groups=8),
        nn.Conv2d(8, 8, 3, padding=1, padding_mode='reflect'),
        nn.Conv2d(8, 8, 3, padding=3),                  # more than NNPACK pads
        nn.Conv2d(8, 8, 3, padding='same'),             # a string padding
    ).eval()
    x = torch.randn(1, 8, 40, 40)
    with torch.no_grad():
        ref = model(x)
        assert use_winograd(model) == 2
        got = model(x)
    assert [type(m) for m in (model[0], model[1][0])] == [WinogradConv2d] * 2
    assert [type(m) for m in model[2:]] == [nn.Conv2d] * 7
    assert not eligible(model[0])  # replaced once: a second call changes nothing
    assert use_winograd(model) == 0
    assert (got - ref).abs().max() <= REL_TOL * ref.abs().max()


def test_without_nnpack_whole_image_maps_keep_the_direct_convolution(monkeypatch, f4x4_calls):
    monkeypatch.setattr(winograd, 'nnpack_available', lambda: False)
    conv = _conv(8, 8)
    fast = WinogradConv2d.from_conv(conv)
    x = torch.randn(1, 8, 40, 40)
    with torch.no_grad():
        assert torch.equal(fast(x), conv(x))
    assert f4x4_calls == []
