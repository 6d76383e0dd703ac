import math

import torch

from swin_dense.layers.position_bias import (build_cpb_mlp, continuous_position_bias, relative_coords_table,
                                                    relative_position_index)

CPU = torch.device('cpu')


def test_coords_table_log_spaced_with_window_normalisation():
    table = relative_coords_table((8, 8), (0, 0), CPU)
    assert table.shape == (15, 15, 2)
    # offset 7 of a window 8 normalises to 8 -> log2(9) / 3
    # the table is fp32 (relative precision 6e-8), the reference float64: 1e-6 is ~16 ulps
    assert math.isclose(table[-1, -1, 0].item(), math.log2(9) / 3, rel_tol=1e-6)
    assert math.isclose(table[0, 0, 1].item(), -math.log2(9) / 3, rel_tol=1e-6)
    assert table[7, 7].abs().max() == 0


def test_coords_table_extrapolates_with_pretrained_window():
    # pretrained 12 used with window 16: offset 15 -> 15/11*8, the official extrapolation of 1.191
    table = relative_coords_table((16, 16), (12, 12), CPU)
    # fp32 table against the float64 formula: ~16 ulps
    assert math.isclose(table.max().item(), math.log2(15 / 11 * 8 + 1) / 3, rel_tol=1e-6)
    # 1.191 is the value the notes give to three decimals
    assert math.isclose(table.max().item(), 1.191, abs_tol=1e-3)


def test_window_of_one_has_no_nan():
    assert torch.isfinite(relative_coords_table((1, 1), (0, 0), CPU)).all()


def test_relative_position_index_is_query_minus_key():
    index = relative_position_index((3, 4), CPU)
    assert index.shape == (12, 12)
    # query (0, 0), key (2, 3): dh = -2, dw = -3 -> (0) * 7 + 0
    assert index[0, 11].item() == 0
    # query (2, 3), key (0, 0): dh = 2, dw = 3 -> 4 * 7 + 6
    assert index[11, 0].item() == 4 * 7 + 6
    assert (index.diagonal() == 2 * 7 + 3).all()


def test_bias_is_16_sigmoid_of_mlp_and_cached_tables_are_reused():
    torch.manual_seed(0)
    mlp = build_cpb_mlp(3)
    bias = continuous_position_bias(mlp, 3, (4, 4), (0, 0))
    assert bias.shape == (3, 16, 16)
    assert (bias > 0).all() and (bias < 16).all()
    table = relative_coords_table((4, 4), (0, 0), CPU)
    expected = 16 * torch.sigmoid(mlp(table.view(-1, 2)))[relative_position_index((4, 4), CPU).view(-1)]
    torch.testing.assert_close(bias, expected.view(16, 16, 3).permute(2, 0, 1))
    assert relative_coords_table((4, 4), (0, 0), CPU) is table
