import torch

from swin_dense.layers.window_masks import MASK_VALUE, attention_mask, window_partition, window_reverse

CPU = torch.device('cpu')


def test_partition_reverse_roundtrip():
    x = torch.randn(2, 12, 8, 5)
    windows = window_partition(x, (4, 4))
    assert windows.shape == (2 * 3 * 2, 16, 5)
    assert torch.equal(windows[1], x[0, 0:4, 4:8].reshape(16, 5))
    assert torch.equal(window_reverse(windows, (4, 4), 12, 8), x)


def test_shifted_partition_is_roll_then_partition_and_reverses_exactly():
    x = torch.randn(2, 12, 8, 5, requires_grad=True)
    windows = window_partition(x, (4, 4), (2, 1))
    expected = window_partition(torch.roll(x, shifts=(-2, -1), dims=(1, 2)), (4, 4))
    assert torch.equal(windows, expected)
    assert torch.equal(window_reverse(windows, (4, 4), 12, 8, (2, 1)), x)
    target = torch.randn_like(windows)
    grad, = torch.autograd.grad((windows * target).sum(), x)
    expected_grad, = torch.autograd.grad((expected * target).sum(), x)
    assert torch.equal(grad, expected_grad)


def test_unshifted_unpadded_has_no_mask():
    assert attention_mask((8, 8), (4, 4), (0, 0), (0, 0), False, CPU) is None
    assert attention_mask((8, 8), (4, 4), (0, 0), (2, 0), False, CPU) is None


def _brute_force_mask(hp, wp, ws, s):
    """The official construction with slices, for comparison."""
    img = torch.zeros(hp, wp)
    cnt = 0
    for hs in (slice(0, -ws), slice(-ws, -s), slice(-s, None)):
        for wsl in (slice(0, -ws), slice(-ws, -s), slice(-s, None)):
            img[hs, wsl] = cnt
            cnt += 1
    ids = window_partition(img[None, :, :, None], (ws, ws)).squeeze(-1)
    mask = ids[:, None, :] - ids[:, :, None]
    return mask.masked_fill(mask != 0, MASK_VALUE).masked_fill(mask == 0, 0.0)


def test_shift_mask_equals_official_construction():
    mask = attention_mask((16, 24), (8, 8), (4, 4), (0, 0), False, CPU)
    assert torch.equal(mask, _brute_force_mask(16, 24, 8, 4))
    assert attention_mask((16, 24), (8, 8), (4, 4), (0, 0), False, CPU) is mask  # cached


def test_padding_mask_blocks_real_queries_from_padded_keys():
    # 6x6 map padded to 8x8, window 8, no shift: rows/cols 6, 7 are padding
    mask = attention_mask((8, 8), (8, 8), (0, 0), (2, 2), True, CPU)
    assert mask.shape == (1, 64, 64)
    is_pad = torch.zeros(8, 8, dtype=torch.bool)
    is_pad[6:, :] = True
    is_pad[:, 6:] = True
    is_pad = is_pad.flatten()
    real, pad = (~is_pad).nonzero()[0, 0], is_pad.nonzero()[0, 0]
    assert mask[0, real, pad] == MASK_VALUE
    assert (mask[0][~is_pad][:, ~is_pad] == 0).all()
    assert (mask[0][is_pad] == 0).all()  # padded queries keep finite rows
