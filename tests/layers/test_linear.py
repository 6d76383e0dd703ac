import pytest
import torch
import torch.nn.functional as F
from torch.profiler import profile

from swin_dense import SwinTransformerV2
from swin_dense.layers.linear import ONEDNN_LINEAR, FusedLinear, fused_linear

pytestmark = pytest.mark.numerics

FUSED_OP = 'mkldnn::_linear_pointwise'


def _ops(fn) -> set:
    with profile() as prof:
        fn()
    return {event.key for event in prof.key_averages()}


@pytest.fixture
def inputs():
    g = torch.Generator().manual_seed(0)
    return torch.randn(3, 50, 24, generator=g), torch.randn(40, 24, generator=g), torch.randn(40, generator=g)


@pytest.mark.parametrize('with_bias', [True, False])
def test_fused_linear_matches_linear(inputs, with_bias):
    x, w, b = inputs
    b = b if with_bias else None
    ref = F.linear(x, w, b)
    for x_in in (x, x.transpose(0, 1)):  # contiguous and strided input
        expected = ref if x_in is x else ref.transpose(0, 1)
        with torch.no_grad():
            out = fused_linear(x_in, w, b)
        assert out.shape == expected.shape
        # 24-term dot products of N(0, 1) values (outputs up to ~20, where one fp32 ulp is 2e-6): oneDNN and MKL
        # sum in other orders, a few ulps apart; a wrong weight layout or a lost bias is off by O(1)
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-6)


def test_fused_kernel_runs_in_inference_only(inputs):
    x, w, b = inputs
    assert ONEDNN_LINEAR, 'torch.ops.mkldnn._linear_pointwise is missing from this x86 torch build'
    with torch.no_grad():
        assert FUSED_OP in _ops(lambda: fused_linear(x, w, b))
        assert FUSED_OP not in _ops(lambda: fused_linear(x, w, b, fused=False))
    w.requires_grad_()
    out = fused_linear(x, w, b)  # recorded: the differentiable path
    out.square().sum().backward()
    expected = w.detach().clone().requires_grad_()
    F.linear(x, expected, b).square().sum().backward()
    torch.testing.assert_close(w.grad, expected.grad)
    assert FUSED_OP not in _ops(lambda: fused_linear(x, w, b).sum().backward())
    w.requires_grad_(False)
    b.requires_grad_()  # bias-only fine-tuning
    fused_linear(x, w, b).sum().backward()
    torch.testing.assert_close(b.grad, torch.full_like(b, x.shape[0] * x.shape[1]))


def test_linear_keeps_nn_linear_parameters(inputs):
    x, _, _ = inputs
    layer = FusedLinear(24, 40)
    plain = torch.nn.Linear(24, 40)
    plain.load_state_dict(layer.state_dict())
    assert set(layer.state_dict()) == {'weight', 'bias'}
    assert isinstance(layer, torch.nn.Linear) and layer.fused
    with torch.no_grad():
        # as above: the same 24-term products summed by oneDNN vs MKL
        torch.testing.assert_close(layer(x), plain(x), atol=1e-5, rtol=1e-6)
        layer.fused = False
        assert FUSED_OP not in _ops(lambda: layer(x))
        torch.testing.assert_close(layer(x), plain(x), atol=1e-5, rtol=1e-6)


def test_backbone_gives_the_same_outputs_with_and_without_the_fused_kernel():
    torch.manual_seed(0)
    model = SwinTransformerV2(arch=dict(embed_dims=16, depths=[1, 1], num_heads=[1, 2]), window_size=4,
                              out_indices=(0, 1)).eval()
    other = SwinTransformerV2(arch=dict(embed_dims=16, depths=[1, 1], num_heads=[1, 2]), window_size=4,
                              out_indices=(0, 1)).eval()
    x = torch.randn(1, 3, 45, 61)
    with torch.no_grad():
        fused = model(x)
        model.set_fused_linear(False)
        assert FUSED_OP not in _ops(lambda: model(x))
        plain = model(x)
        assert FUSED_OP in _ops(lambda: other(x))  # a flag of each model's layers, not a global
        model.set_fused_linear(True)
        assert FUSED_OP in _ops(lambda: model(x))
    for a, b in zip(fused, plain):
        # LayerNorm-normalised outputs (|x| < ~5) after two blocks of Linear layers summed in another order:
        # fp32 reordering grows to a few 1e-6 there; a wrong bias or activation moves them by O(0.1)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_hooks_and_wrappers_on_the_linear_layers_run():
    """Attention and MLP call their Linear modules: forward hooks see every call, and a wrapper that
    replaces a layer (as LoRA, quantisation or an FSDP unit does) changes the output."""
    torch.manual_seed(0)
    model = SwinTransformerV2(arch=dict(embed_dims=16, depths=[1, 1], num_heads=[1, 2]), window_size=4,
                              out_indices=(0, 1)).eval()
    x = torch.randn(1, 3, 32, 32)
    calls = []
    linears = {name: m for name, m in model.named_modules() if isinstance(m, torch.nn.Linear) and 'cpb_mlp' not in name}
    assert all(isinstance(m, FusedLinear) for m in linears.values())
    for name, m in linears.items():
        m.register_forward_hook(lambda mod, inp, out, name=name: calls.append(name))
    with torch.no_grad():
        before = model(x)
    assert set(calls) == set(linears)  # qkv, proj, fc1, fc2 of every block and the patch merging

    class Doubled(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, t):
            return 2 * self.inner(t)

    block = model.layers[0].blocks[0]
    for parent, name in ((block.attn, 'qkv'), (block.mlp, 'fc1')):
        layer = getattr(parent, name)
        setattr(parent, name, Doubled(layer))
        with torch.no_grad():
            assert not torch.allclose(model(x)[0], before[0]), name
        setattr(parent, name, layer)
