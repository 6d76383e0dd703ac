"""One trace of the backbone, taken at ``sizes.trace_side``, holds at every input size: maps larger and
smaller than their windows (the shrink rule, traced as tensor ops), window multiples or not, with and
without padding masks. ``torch.jit.trace`` is what the ONNX exporter records from (tests/deploy's
export tests run the same through ONNX Runtime)."""
import warnings

import pytest
import torch

from conftest import redraw_norms_
from swin_dense import SwinTransformerV2
from swin_dense.deploy.sizes import full_window_side, stage_sides, trace_side
from swin_dense.layers.swin_block import effective_window

TINY = dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8])
# (H, W) on both sides of the windows: 8 px windows shrink in stage 3 below 257 px, in stage 2 below 129
SIZES = [(300, 340), (256, 256), (128, 171), (100, 37), (33, 47), (4, 9)]


def _backbone(mask_padding: bool) -> SwinTransformerV2:
    torch.manual_seed(0)
    model = SwinTransformerV2(arch=TINY, window_size=8, pretrained_window_size=0, drop_path_rate=0.0,
                              mask_padding=mask_padding)
    model.init_weights()
    model.set_fused_linear(False)  # as the exporter does: the oneDNN kernel is no traceable op
    return redraw_norms_(model).eval()


def test_trace_side_takes_every_padding_branch():
    side = trace_side([8, 8, 8, 8], 4)
    assert side >= full_window_side([8, 8, 8, 8], 4) == 257
    maps = stage_sides(side, 4, 4)
    assert side % 4 and all(m % 8 and m > 8 for m in maps) and all(m % 2 for m in maps[:-1])


def test_traced_window_rule_equals_the_rule():
    for h, w in [(64, 64), (8, 20), (5, 9), (1, 9), (9, 9)]:
        window, shift = effective_window(torch.tensor(h), torch.tensor(w), 8)
        assert (int(window), int(shift)) == effective_window(h, w, 8)


@pytest.mark.parametrize('mask_padding', [False, True])
def test_one_trace_holds_at_every_size(mask_padding):
    model = _backbone(mask_padding)
    side = trace_side(model.window_size, 4)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        traced = torch.jit.trace(model, torch.randn(1, 3, side, side), check_trace=False)
    gen = torch.Generator().manual_seed(0)
    for size in SIZES:
        x = torch.randn(1, 3, *size, generator=gen)
        with torch.no_grad():
            ref, got = model(x), traced(x)
        for r, g in zip(ref, got):
            assert r.shape == g.shape
            # the same model in another op order (traced: eager attention; eager run: SDPA): fp32
            # rounding, measured below 1e-5 on outputs of magnitude ~1; a wrong window or mask moves them by O(0.1)
            torch.testing.assert_close(g, r, atol=1e-4, rtol=0, msg=f'{size}')
