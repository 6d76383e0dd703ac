"""swin_dense.benchmark.chunk_sweep: chunk settings parsed per stage, timed and measured, or traced."""
import pytest
import torch

from swin_dense.benchmark.chunk_sweep import (DEFAULT_SETTINGS, parse_chunks, parse_settings, run_sweep,
                                              sweep_markdown, trace_sweep)
from swin_dense.models import SwinTransformerV2

from bench_helpers import ARCH

# stage 0 of 128x128 is 32x32 tokens = 16 windows of 8x8: chunks of 2 windows run it in eight calls
# (with windows of 8 the attention weights, not the weight gradients, dominate a stage-0 block)
WINDOW, SIZE = 8, 128
CHUNKED = ([2, 0, 0, 0], [2, 0, 0, 0])
WHOLE = ([0] * 4, [0] * 4)


def test_parse_settings_per_stage():
    assert parse_settings('0/0; 16,16,0,0/0 ;16/16', 4) == [WHOLE, ([16, 16, 0, 0], [0] * 4), ([16] * 4, [16] * 4)]
    assert len(parse_settings(DEFAULT_SETTINGS, 4)) == 7
    assert parse_chunks('16,0') == [16, 0]
    for bad, match in (('16', 'ATTN/MLP'), ('16/0/0', 'ATTN/MLP'), ('16,16/0', 'one value per stage'),
                       ('a/0', 'whole number'), ('-1/0', 'positive'), (';', 'no chunk settings')):
        with pytest.raises(ValueError, match=match):
            parse_settings(bad, 4)


def test_run_sweep_times_and_measures_every_setting():
    torch.manual_seed(0)
    backbone = SwinTransformerV2(arch=ARCH, window_size=WINDOW, drop_path_rate=0.0)
    x = torch.randn(1, 3, SIZE, SIZE)
    rows = run_sweep(backbone, x, [WHOLE, CHUNKED], [True, False], repeats=2, warmup=1)
    assert [(r['with_cp'], r['attn'], r['mlp']) for r in rows] == \
        [(cp, *s) for cp in (True, False) for s in (WHOLE, CHUNKED)]
    for r in rows:
        assert len(r['times_s']) == 2 and 0 < r['min_s'] <= r['median_s'] and r['peak_mib'] > 0
    by = {(r['with_cp'], tuple(r['attn'])): r['peak_mib'] for r in rows}
    # stage 0 holds one chunk's attention and MLP hidden layer at a time instead of all 16 windows'
    # (traced: 4.6 vs 5.2 MiB with checkpointing, 8.6 vs 11.0 without)
    assert by[(True, (2, 0, 0, 0))] < by[(True, (0, 0, 0, 0))] and by[(False, (2, 0, 0, 0))] < by[(False, (0, 0, 0, 0))]
    blocks = [(b.attn.chunk_size, b.mlp_chunk_size) for s in backbone.layers for b in s.blocks]
    assert blocks == [(2, 2)] * 2 + [(0, 0)] * 6  # the last setting run (memory step) is left switched on
    table = sweep_markdown(rows).splitlines()
    assert table[0].startswith('| with_cp | `attn_chunk_size` | `mlp_chunk_size` | step s (min) |')
    assert table[2].startswith('| True | 0 | 0 |') and table[2].endswith('| 1.00 |')
    assert table[3].startswith('| True | [2, 0, 0, 0] | [2, 0, 0, 0] |')


def test_trace_sweep_matches_the_measured_order():
    rows = trace_sweep(dict(arch=ARCH, window_size=WINDOW, drop_path_rate=0.0), (1, 3, SIZE, SIZE), [WHOLE, CHUNKED],
                       [True])
    whole, chunked = rows
    assert chunked['peak_mib'] < whole['peak_mib'] and chunked['largest_mib'] <= whole['largest_mib']
    table = sweep_markdown(rows).splitlines()
    assert table[0].endswith('| peak MiB (traced) | largest tensor MiB | peak / no chunks |')
    assert table[2].endswith('| 1.00 |') and len(table) == 4
