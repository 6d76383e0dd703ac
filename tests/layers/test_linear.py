import pytest
import torch
import torch.nn.functional as F
from torch.profiler import profile

import swin_dense.layers.linear as linear
from swin_dense import SwinTransformerV2
from swin_dense.layers.linear import Linear, fused_linear, fused_linears

FUSED_OP = 'mkldnn::_linear_pointwise'


def _ops(fn) -> set:
    with profile() as prof:
        fn()
    return {event.key for event in prof.key_averages()}


@pytest.fixture
def inputs():
    g = torch.Generator().manual_seed(0)
    return torch.randn(3, 50, 24, generator=g), torch.randn(40, 24, generator=g), torch.randn(40, generator=g)


@pytest.mark.parametrize('activation', ['none', 'gelu'])
@pytest.mark.parametrize('with_bias', [True, False])
def test_fused_linear_matches_linear_and_exact_gelu(inputs, activation, with_bias):
    x, w, b = inputs
    b = b if with_bias else None
    ref = F.linear(x, w, b)
    ref = F.gelu(ref) if activation == 'gelu' else ref
    for x_in in (x, x.transpose(0, 1)):  # contiguous and strided input
        expected = ref if x_in is x else ref.transpose(0, 1)
        with torch.no_grad():
            out = fused_linear(x_in, w, b, activation)
        assert out.shape == expected.shape
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-6)


def test_fused_kernel_runs_in_inference_only(inputs):
    x, w, b = inputs
    assert linear._FUSED, 'torch.ops.mkldnn._linear_pointwise is missing from this x86 torch build'
    with torch.no_grad():
        assert FUSED_OP in _ops(lambda: fused_linear(x, w, b, 'gelu'))
    w.requires_grad_()
    out = fused_linear(x, w, b, 'gelu')  # recorded: the differentiable path
    out.square().sum().backward()
    expected = w.detach().clone().requires_grad_()
    F.gelu(F.linear(x, expected, b)).square().sum().backward()
    torch.testing.assert_close(w.grad, expected.grad)
    assert FUSED_OP not in _ops(lambda: fused_linear(x, w, b).sum().backward())
    w.requires_grad_(False)
    b.requires_grad_()  # bias-only fine-tuning
    fused_linear(x, w, b).sum().backward()
    torch.testing.assert_close(b.grad, torch.full_like(b, x.shape[0] * x.shape[1]))


def test_linear_keeps_nn_linear_parameters(inputs):
    x, _, _ = inputs
    layer = Linear(24, 40)
    plain = torch.nn.Linear(24, 40)
    plain.load_state_dict(layer.state_dict())
    assert set(layer.state_dict()) == {'weight', 'bias'}
    with torch.no_grad():
        torch.testing.assert_close(layer(x), plain(x), atol=1e-5, rtol=1e-6)


def test_unknown_activation_is_refused(inputs):
    x, w, b = inputs
    with pytest.raises(ValueError, match='activation must be one of'):
        fused_linear(x, w, b, 'relu')


def test_backbone_gives_the_same_outputs_with_and_without_the_fused_kernel():
    torch.manual_seed(0)
    model = SwinTransformerV2(arch=dict(embed_dims=16, depths=[1, 1], num_heads=[1, 2]), window_size=4,
                              out_indices=(0, 1)).eval()
    x = torch.randn(1, 3, 45, 61)
    with torch.no_grad():
        fused = model(x)
        with fused_linears(False):
            assert FUSED_OP not in _ops(lambda: model(x))
            plain = model(x)
        assert FUSED_OP in _ops(lambda: model(x))
    for a, b in zip(fused, plain):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
