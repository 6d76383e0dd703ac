"""Winograd 3x3 convolutions (swin_dense/inference/winograd.py): which convolutions are replaced, that
whole-image maps go through NNPACK and give the direct convolution's values within Winograd's rounding,
and that everything else keeps the direct convolution bit for bit."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from swin_dense.inference import winograd
from swin_dense.inference.winograd import MIN_PIXELS, WinogradConv2d, eligible, use_winograd

pytestmark = pytest.mark.skipif(not winograd.nnpack_available(), reason='this PyTorch build has no NNPACK')

# relative to the output's largest value: NNPACK's 8x8 Winograd tiles measured up to 1.4e-5 in UPerNet
# T's head (docs/benchmarks.md, section 6); a transform applied wrongly (a tile off by one, a missing
# bias) is off by O(1)
REL_TOL = 5e-5


@pytest.fixture
def nnpack_calls(monkeypatch):
    """Counts the images that go through NNPACK."""
    calls = []
    real = torch._nnpack_spatial_convolution

    def counted(x, *args):
        calls.append(tuple(x.shape))
        return real(x, *args)

    monkeypatch.setattr(torch, '_nnpack_spatial_convolution', counted)
    return calls


def _conv(cin: int, cout: int, padding: int = 1, bias: bool = True) -> nn.Conv2d:
    torch.manual_seed(0)
    return nn.Conv2d(cin, cout, 3, padding=padding, bias=bias).eval()


@pytest.mark.parametrize('shape,padding,bias', [
    ((1, 48, 28, 28), 1, True),     # the smallest map that goes through NNPACK
    ((3, 16, 37, 51), 1, True),     # a batch, sides not multiples of the 6x6 output tile
    ((2, 24, 30, 41), 0, False),    # no padding, no bias
    ((1, 16, 29, 33), 2, True),     # NNPACK's largest padding for a 3x3 kernel
])
def test_whole_image_maps_go_through_nnpack_with_the_direct_values(shape, padding, bias, nnpack_calls):
    conv = _conv(shape[1], 32, padding, bias)
    fast = WinogradConv2d.from_conv(conv)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = F.conv2d(x.double(), conv.weight.double(), None if conv.bias is None else conv.bias.double(),
                       padding=padding)
        got = fast(x)
    assert nnpack_calls == [(1, *shape[1:])] * shape[0]
    assert got.shape == ref.shape and got.dtype == torch.float32
    assert (got.double() - ref).abs().max() <= REL_TOL * ref.abs().max()


@pytest.mark.parametrize('shape,dtype', [
    ((100, 32, 7, 7), torch.float32),    # RoI maps
    ((1, 32, 27, 29), torch.float32),    # one pixel short of MIN_PIXELS
    ((1, 32, 40, 40), torch.float64),
])
def test_other_inputs_keep_the_direct_convolution(shape, dtype, nnpack_calls):
    assert shape[-1] * shape[-2] < MIN_PIXELS or dtype != torch.float32
    conv = _conv(shape[1], 16).to(dtype)
    fast = WinogradConv2d.from_conv(conv)
    x = torch.randn(shape, dtype=dtype, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(fast(x), conv(x))
    assert nnpack_calls == []


def test_tracing_sees_the_direct_convolution(nnpack_calls):
    fast = WinogradConv2d.from_conv(_conv(16, 16))
    x = torch.randn(1, 16, 32, 32)
    with torch.no_grad():
        traced = torch.jit.trace(fast, x, check_trace=False)  # the check re-runs it untraced
    assert nnpack_calls == []
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


def test_nothing_changes_without_nnpack(monkeypatch):
    monkeypatch.setattr(winograd, 'nnpack_available', lambda: False)
    model = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1))
    assert use_winograd(model) == 0 and type(model[0]) is nn.Conv2d
