"""SwinTransformerV2: shapes at any size, border correctness, window shrink, freezing, checkpointing, arguments."""
import copy

import pytest
import torch

from conftest import redraw_norms_, saved_bytes
from swin_dense import SwinTransformerV2

TINY = dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8])


def _model(**kwargs) -> SwinTransformerV2:
    torch.manual_seed(0)
    kwargs.setdefault('arch', TINY)
    kwargs.setdefault('drop_path_rate', 0.0)
    model = SwinTransformerV2(**kwargs)
    model.init_weights()
    return redraw_norms_(model)


@pytest.mark.parametrize('size', [(333, 517), (97, 101), (31, 45), (64, 64)])
def test_output_shapes_at_any_size(size):
    model = _model(window_size=7).eval()
    h, w = size
    with torch.no_grad():
        outs = model(torch.randn(1, 3, h, w))
    for i, out in enumerate(outs):
        stride = 4 * 2 ** i
        assert out.shape == (1, 16 * 2 ** i, -(-h // stride), -(-w // stride))
        assert torch.isfinite(out).all()


def test_out_indices_select_stages():
    model = _model(out_indices=(1, 3)).eval()
    outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [32, 128]
    assert not hasattr(model, 'norm0')


@pytest.mark.parametrize('mask_padding', [False, True])
def test_right_border_does_not_leak_into_left_edge(mask_padding):
    """Width 100 px -> 25 tokens in stage 0, padded to 32 for window 8: the shifted block's wrap-around
    window holds the left edge and padding only, never the right-most real column."""
    model = _model(window_size=8, out_indices=(0,), mask_padding=mask_padding).eval()
    x = torch.randn(1, 3, 64, 100)
    y = x.clone()
    y[..., 96:] = torch.randn(1, 3, 64, 4)
    with torch.no_grad():
        a, b = model(x)[0], model(y)[0]
    # the same arithmetic on the left columns in both runs, up to kernel blocking (a leak would move them by O(0.1))
    torch.testing.assert_close(a[..., :4], b[..., :4], atol=1e-6, rtol=0)
    assert not torch.allclose(a[..., -1], b[..., -1])


def test_window_shrinks_to_small_maps_without_shift():
    from swin_dense.layers.swin_block import effective_window
    assert effective_window(64, 64, 8) == (8, 4)
    assert effective_window(8, 20, 8) == (8, 0)
    assert effective_window(5, 9, 8) == (5, 0)
    assert effective_window(1, 9, 8) == (2, 0)  # never a 1-token window
    model = _model(window_size=16, pretrained_window_size=0).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 36, 36))  # maps 9, 5, 3, 2: every stage shrinks
    assert all(torch.isfinite(o).all() for o in outs)


def _grads(model, x):
    model.zero_grad()
    sum(o.square().mean() for o in model(x)).backward()
    return {n: p.grad for n, p in model.named_parameters()}


@pytest.mark.parametrize('with_cp', [False, True])
def test_frozen_stages_get_no_gradients(with_cp):
    model = _model(frozen_stages=2, with_cp=with_cp).train()
    grads = _grads(model, torch.randn(1, 3, 64, 64))
    for name, grad in grads.items():
        frozen = name.startswith(('patch_embed.', 'layers.0.', 'layers.1.', 'norm0.', 'norm1.'))
        assert (grad is None) == frozen, name
    assert not model.patch_embed.training and not model.layers[1].training and model.layers[2].training


def test_with_cp_gives_the_same_gradients():
    x = torch.randn(2, 3, 64, 64)
    plain = _grads(_model(frozen_stages=1).train(), x)
    checkpointed = _grads(_model(frozen_stages=1, with_cp=True).train(), x)
    for name, grad in plain.items():
        if grad is None:
            assert checkpointed[name] is None
        else:
            # recomputing the forward in backward repeats the same ops: only the accumulation order of gradients differs
            torch.testing.assert_close(checkpointed[name], grad, atol=1e-6, rtol=1e-5)


@pytest.mark.numerics
@pytest.mark.parametrize('seed', [0, 1, 2])
def test_sdpa_is_as_exact_as_eager_and_chunking_changes_nothing(seed):
    """Whole backbone, fp32, against the official op order run in float64: the fused path's error
    is of the size of the eager fp32 path's own (fp32 reorderings grow through 8 blocks of
    LayerNorms, so the two fp32 paths are compared through the reference, not with each other),
    and sequential mode gives the fused path's outputs."""
    x = torch.randn(1, 3, 97, 130, generator=torch.Generator().manual_seed(seed))
    eager = _model(attn_impl='eager', window_size=8, mask_padding=True).eval()
    with torch.no_grad():
        reference = copy.deepcopy(eager).double()(x.double())
        outputs = {(impl, chunk): _model(attn_impl=impl, window_size=8, mask_padding=True, attn_chunk_size=chunk,
                                         mlp_chunk_size=chunk).eval()(x)
                   for impl, chunk in (('eager', 0), ('sdpa', 0), ('sdpa', 3))}
    for i, ref in enumerate(reference):
        errors = {key: (out[i].double() - ref).abs().max().item() for key, out in outputs.items()}
        # fp32 vs float64 of the same op order through 5 blocks (normed stage outputs): measured up to 2.9e-5
        # (AVX-512); the bound leaves 3x for other kernels, and a defect is O(0.1)
        assert errors['eager', 0] < 1e-4, errors
        # the fused kernel is as accurate as the official op order (twice its own fp32 error, + 1e-6 for stages where
        # that error is tiny): the comparison goes through the float64 reference, not fp32 against fp32
        assert errors['sdpa', 0] <= 2 * errors['eager', 0] + 1e-6, f'stage {i}: {errors}'
        # chunks of 3 windows run the same per-window math; only kernel blocking differs (a few ulps of outputs ~1)
        torch.testing.assert_close(outputs['sdpa', 3][i], outputs['sdpa', 0][i], atol=1e-6, rtol=0)


def test_sequential_mode_trains_like_full_with_a_smaller_peak():
    """attn_chunk_size and mlp_chunk_size in training: same loss and gradients (with and without
    with_cp), and autograd keeps far fewer bytes, since q/k/v, attention weights and MLP hidden are
    recomputed per chunk."""
    x = torch.randn(2, 3, 97, 130)
    results = {}
    for chunk, with_cp in ((0, False), (2, False), (2, True)):
        model = _model(window_size=8, attn_chunk_size=chunk, mlp_chunk_size=chunk, with_cp=with_cp).train()
        loss, saved = saved_bytes(lambda: sum(o.square().mean() for o in model(x)))
        loss.backward()
        results[chunk, with_cp] = (loss.detach(), {n: p.grad for n, p in model.named_parameters()}, saved)
    full_loss, full_grads, full_saved = results[0, False]
    for key in ((2, False), (2, True)):
        loss, grads, saved = results[key]
        # sequential mode recomputes per chunk (same math, other blocking); the loss is a mean of ~1e4 squares
        torch.testing.assert_close(loss, full_loss, atol=1e-6, rtol=1e-5)
        for name, grad in full_grads.items():
            # gradients are sums over all tokens, accumulated chunk by chunk in another order: relative rounding 1e-4 of
            # sums of up to ~1e4 terms; a chunk that drops tokens or a mask changes them by O(1)
            torch.testing.assert_close(grads[name], grad, atol=1e-5, rtol=1e-4, msg=f'{key}: {name}')
    assert results[2, False][2] < 0.5 * full_saved


def test_attention_and_mlp_chunks_are_separate_per_stage_settings():
    """attn_chunk_size chunks the attention only, mlp_chunk_size the MLP only; each takes an int or
    one value per stage (0 = off in that stage), and neither changes the outputs."""
    model = _model(window_size=8, attn_chunk_size=[0, 3, 0, 2], mlp_chunk_size=1)
    assert [b.attn.chunk_size for stage in model.layers for b in stage.blocks] == [0, 0, 3, 3, 0, 0, 2, 2]
    assert {b.mlp_chunk_size for stage in model.layers for b in stage.blocks} == {1}
    only_attn = _model(window_size=8, attn_chunk_size=2)
    assert {b.mlp_chunk_size for stage in only_attn.layers for b in stage.blocks} == {0}
    x = torch.randn(1, 3, 97, 130)
    with torch.no_grad():
        full = _model(window_size=8).eval()(x)
        for chunked in (model.eval(), only_attn.eval(), _model(window_size=8, mlp_chunk_size=2).eval()):
            for out, ref in zip(chunked(x), full):
                # chunking changes kernel blocking only (a few ulps of LayerNorm outputs ~1)
                torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)


def test_get_layer_depth_follows_mmpretrain_convention():
    """(layer_depth, num_layers) with num_layers = sum(depths) + 2: stem 0, blocks in order, patch merging
    with its stage's last block, output norms and everything outside the prefix at num_layers - 1."""
    model = SwinTransformerV2(arch=dict(embed_dims=8, depths=[2, 2, 18, 2], num_heads=[1, 1, 1, 1]))
    n = 2 + 2 + 18 + 2 + 2
    cases = {'backbone.patch_embed.proj.weight': 0, 'backbone.layers.0.blocks.0.attn.qkv.weight': 1,
             'backbone.layers.0.downsample.reduction.weight': 2, 'backbone.layers.2.blocks.17.norm2.bias': 22,
             'backbone.layers.2.downsample.norm.weight': 22, 'backbone.layers.3.blocks.1.mlp.fc2.weight': 24,
             'backbone.norm3.weight': n - 1, 'neck.fpn_convs.0.conv.weight': n - 1}
    for name, depth in cases.items():
        assert model.get_layer_depth(name, 'backbone.') == (depth, n), name
    # every parameter of the backbone itself, named without a prefix
    depths = {model.get_layer_depth(name)[0] for name, _ in model.named_parameters()}
    assert depths == set(range(n))


def test_drop_path_is_applied_after_the_post_norm():
    """A dropped residual branch contributes exactly 0 (official), not LN(0) = beta (mmpretrain's order)."""
    model = _model(arch=dict(embed_dims=16, depths=[1], num_heads=[1]), out_indices=(0,))
    block = model.layers[0].blocks[0]
    block.drop_path = torch.nn.Identity()
    x = torch.randn(1, 8, 8, 16)
    with torch.no_grad():
        block.norm1.bias.fill_(3.0)
        block.norm2.bias.fill_(3.0)
        kept = block(x, 8, 0, None)

        class DropAll(torch.nn.Module):
            def forward(self, t):
                return t * 0

        block.drop_path = DropAll()
        dropped = block(x, 8, 0, None)
    torch.testing.assert_close(dropped, x)
    assert not torch.allclose(kept, x)


def test_from_scratch_init_zeroes_post_norms_and_train_returns_self():
    model = SwinTransformerV2(arch=TINY)
    model.init_weights()
    block = model.layers[2].blocks[1]
    assert block.norm1.weight.abs().sum() == 0 and block.norm2.bias.abs().sum() == 0
    assert model.train() is model


@pytest.mark.parametrize('kwargs, message', [
    (dict(window_size=0), 'window_size must be positive'),
    (dict(window_size=[8, 8, -1, 8]), 'window_size must be positive'),
    (dict(pretrained_window_size=1), 'pretrained_window_size'),
    (dict(out_indices=(0, 4)), 'out_indices'),
    (dict(frozen_stages=5), 'frozen_stages=5'),
    (dict(arch=dict(embed_dims=16, depths=[2, 2])), "missing ['num_heads']"),
    (dict(arch=dict(embed_dims=16, depths=[2, 2], num_heads=[1])), 'same length'),
    (dict(arch=dict(embed_dims=18, depths=[1, 1], num_heads=[4, 4])), 'not divisible by num_heads=4'),
    (dict(arch='enormous'), "unknown arch 'enormous'"),
    (dict(window_size=[8, 8]), 'one value per stage'),
    (dict(attn_impl='flash'), 'attn_impl'),
    (dict(attn_chunk_size=-1), 'attn_chunk_size must be 0 (off) or a positive'),
    (dict(mlp_chunk_size=[4, 4, -2, 4]), 'mlp_chunk_size must be 0 (off) or a positive'),
    (dict(mlp_chunk_size=[4, 4]), 'mlp_chunk_size needs one value per stage'),
])
def test_bad_arguments_are_named(kwargs, message):
    kwargs.setdefault('arch', TINY)
    with pytest.raises(ValueError, match=__import__('re').escape(message)):
        SwinTransformerV2(**kwargs)


def test_input_smaller_than_a_patch_is_refused():
    with pytest.raises(ValueError, match='smaller than one 4x4 patch'):
        _model()(torch.randn(1, 3, 3, 64))
