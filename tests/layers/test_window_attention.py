import copy

import pytest
import torch

from conftest import saved_bytes
from swin_dense.layers.window_attention import WindowAttentionV2
from swin_dense.layers.window_masks import attention_mask

pytestmark = pytest.mark.numerics


def _randomised(attn: WindowAttentionV2) -> WindowAttentionV2:
    torch.manual_seed(0)
    for p in attn.parameters():
        torch.nn.init.normal_(p, std=0.2)
    return attn


def _official(attn, x, window, mask):
    """The official op order written out: the reference the module must reproduce."""
    b_, n, c = x.shape
    qkv = torch.nn.functional.linear(x, attn.qkv.weight, torch.cat((attn.q_bias, torch.zeros_like(attn.v_bias),
                                                                    attn.v_bias)))
    q, k, v = qkv.reshape(b_, n, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4)
    logits = torch.nn.functional.normalize(q, dim=-1) @ torch.nn.functional.normalize(k, dim=-1).transpose(-2, -1)
    logits = logits * torch.clamp(attn.logit_scale, max=4.605170185988092).exp()
    logits = logits + attn.position_bias(window).unsqueeze(0)
    nw = mask.shape[0]
    logits = logits.view(b_ // nw, nw, attn.num_heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
    out = logits.view(b_, attn.num_heads, n, n).softmax(-1) @ v
    return attn.proj(out.transpose(1, 2).reshape(b_, n, c))


@pytest.mark.parametrize('grad', [True, False], ids=['train', 'inference'])
@pytest.mark.parametrize('impl', ['eager', 'sdpa'])
def test_matches_official_op_order(impl, grad):
    """Both paths, with the bias needing a gradient (written-out math on CPU) and without (fused kernel)."""
    attn = _randomised(WindowAttentionV2(16, 2, (6, 6), attn_impl=impl))
    x = torch.randn(2 * 6, 16, 16)
    mask = attention_mask((8, 12), (4, 4), (2, 2), (0, 0), False, torch.device('cpu'))
    with torch.no_grad():
        expected = _official(attn, x, (4, 4), mask)
    with torch.set_grad_enabled(grad):
        out = attn(x, (4, 4), mask)
    # eager is the official op order (bitwise); the fused SDPA kernel sums q.k and attn.v in its own order:
    # outputs of 16-channel heads of magnitude ~1 differ by a few ulps (1e-5 = ~80 ulps), a wrong mask by O(0.1)
    atol = 0 if impl == 'eager' else 1e-5
    torch.testing.assert_close(out, expected, atol=atol, rtol=0)


def test_sdpa_gradients_match_official():
    attn = _randomised(WindowAttentionV2(16, 2, (6, 6), attn_impl='sdpa'))
    x = torch.randn(2 * 6, 16, 16)
    mask = attention_mask((8, 12), (4, 4), (2, 2), (0, 0), False, torch.device('cpu'))
    target = torch.randn(2 * 6, 16, 16)
    grads = []
    for forward in (_official, lambda a, *args: a(*args)):
        attn.zero_grad()
        (forward(attn, x, (4, 4), mask) * target).sum().backward()
        grads.append({name: p.grad.clone() for name, p in attn.named_parameters()})
    for name, expected in grads[0].items():
        # gradients summed over 12 windows x 16 tokens in the fused kernel's order: rounding of sums of magnitude ~10
        torch.testing.assert_close(grads[1][name], expected, atol=1e-5, rtol=1e-5, msg=name)


def test_chunked_attention_equals_full():
    attn = _randomised(WindowAttentionV2(16, 2))
    x = torch.randn(3 * 6, 16, 16)
    mask = attention_mask((8, 12), (4, 4), (2, 2), (0, 0), False, torch.device('cpu'))
    full = attn(x, (4, 4), mask)
    for chunk in (1, 4, 7, 12):
        attn.chunk_size = chunk
        # chunking splits the batch of windows only: each window's arithmetic is the same, up to kernel blocking (1e-6)
        torch.testing.assert_close(attn(x, (4, 4), mask), full, atol=1e-6, rtol=0)


def test_logit_scale_clamped_at_ln100():
    attn = _randomised(WindowAttentionV2(16, 2, attn_impl='eager'))
    x = torch.randn(2, 16, 16)
    with torch.no_grad():
        attn.logit_scale.fill_(4.0)
        ref = attn(x, (4, 4), None)
        attn.logit_scale.fill_(10.0)
        clamped = attn(x, (4, 4), None)
        attn.logit_scale.fill_(20.0)
        torch.testing.assert_close(attn(x, (4, 4), None), clamped)
    assert not torch.allclose(ref, clamped)


def test_eval_bias_cache_follows_weight_updates():
    attn = _randomised(WindowAttentionV2(16, 2))
    with torch.no_grad():
        first = attn.position_bias((4, 4))
        assert attn.position_bias((4, 4)) is first
        attn.cpb_mlp[2].weight.mul_(2)
        assert not torch.equal(attn.position_bias((4, 4)), first)


def test_all_zero_tokens_stay_finite_in_half_precision_autocast():
    attn = _randomised(WindowAttentionV2(16, 2))
    x = torch.zeros(2, 16, 16)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = attn(x, (4, 4), None)
    assert torch.isfinite(out).all()


def test_sequential_attention_trains_like_full_and_keeps_no_attention_weights():
    """chunk_size > 0 in training: same output and gradients, and no (windows, heads, N, N) tensor saved."""
    torch.manual_seed(0)
    x = torch.randn(2 * 6, 64, 16, requires_grad=True)
    mask = attention_mask((16, 24), (8, 8), (4, 4), (0, 0), False, torch.device('cpu'))
    results = []
    for chunk in (0, 2):
        attn = _randomised(WindowAttentionV2(16, 2, chunk_size=chunk))
        x.grad = None
        out = attn(x, (8, 8), mask)
        out.square().sum().backward()
        _, saved = saved_bytes(lambda: attn(x, (8, 8), mask))
        results.append((out.detach(), x.grad.clone(), attn.cpb_mlp[0].weight.grad.clone(), saved))
    (out0, gx0, gb0, saved_full), (out2, gx2, gb2, saved_seq) = results
    # per-chunk recomputation in training runs the written-out math on fewer windows: kernel blocking changes the
    # summation order of 64-token windows (outputs ~1, a few ulps); the gradients below sum over the chunks
    torch.testing.assert_close(out2, out0, atol=1e-5, rtol=0)
    torch.testing.assert_close(gx2, gx0, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gb2, gb0, atol=1e-5, rtol=1e-5)
    attention_weights = 2 * 6 * 2 * 64 * 64 * 4  # (B * nW, nH, N, N) float32
    assert saved_full > attention_weights
    assert saved_seq < saved_full - attention_weights


def test_cached_position_bias_follows_a_dtype_change():
    """The inference cache of the position bias is keyed by the parameters' storage and dtype: after
    ``.double()`` an fp32 bias cached by an earlier forward is not reused."""
    attn = _randomised(WindowAttentionV2(16, 2, (4, 4))).eval()
    x = torch.randn(2, 16, 16)
    with torch.no_grad():
        attn(x, (4, 4), None)  # caches the fp32 bias
        bias = attn.position_bias((4, 4))
        assert bias.dtype == torch.float32
        attn.double()
        assert attn.position_bias((4, 4)).dtype == torch.float64
        fresh = copy.deepcopy(attn)
        fresh._bias_cache.clear()
        torch.testing.assert_close(attn(x.double(), (4, 4), None), fresh(x.double(), (4, 4), None), atol=0, rtol=0)
