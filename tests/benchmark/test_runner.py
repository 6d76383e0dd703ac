"""swin_dense.benchmark.runner: one size end to end with swin_dense variants (no peer needed)."""
import pytest
import torch

from bench_helpers import ARCH, WINDOW, bench_args, tiny_state
from swin_dense.benchmark.peers import Impl, make_impls
from swin_dense.benchmark.runner import add_ratios, cp_settings, parse_sizes, run_size, short_error

CPU = torch.device('cpu')
KEYS = {
        'impl', 'size', 'height', 'width', 'mode', 'with_cp', 'attn_chunk', 'mlp_chunk', 'batch', 'dtype',
        'device', 'status', 'error', 'note', 'cache_mib', 'max_abs_diff', 'grad_rel_diff', 'compare', 'times_s',
        'median_s', 'ms_per_image', 'images_per_s', 'step_peak_mib', 'peak_mem_mib', 'rss_growth_mib',
        'speedup_vs_peer', 'mem_ratio_peer_over_ours'}


@pytest.fixture(scope='module')
def state():
    return tiny_state()


def test_parse_sizes():
    assert parse_sizes('512x512, 800X1344,,64') == [(512, 512), (800, 1344), (64, 64)]
    with pytest.raises(ValueError, match='no sizes'):
        parse_sizes(' , ')


def test_cp_settings():
    assert cp_settings('forward', 'on') == [False]
    assert cp_settings('train', None) == [False, True]
    assert cp_settings('train', 'off') == [False] and cp_settings('train', 'on') == [True]


def test_short_error():
    assert short_error(RuntimeError('first line\nsecond')) == 'RuntimeError: first line'
    assert short_error(ValueError()) == 'ValueError: '
    assert len(short_error(RuntimeError('x' * 1000))) == len('RuntimeError: ') + 300


def test_add_ratios():
    rows = {'swin_dense': dict(ms_per_image=10.0, peak_mem_mib=100.0),
            'timm': dict(ms_per_image=25.0, peak_mem_mib=50.0),
            'mmpretrain': dict(ms_per_image=None, peak_mem_mib=None)}
    add_ratios(rows)
    assert rows['swin_dense']['speedup_vs_peer'] == 1.0 and rows['timm']['speedup_vs_peer'] == 2.5
    assert rows['timm']['mem_ratio_peer_over_ours'] == 0.5 and rows['mmpretrain']['speedup_vs_peer'] is None


def test_forward_rows(state):
    impls = make_impls(['swin_dense', 'swin_dense_unfused'], ARCH, WINDOW, state, CPU)
    rows = run_size(impls, (64, 96), 'forward', False, bench_args(repeats=2), print)
    assert [r['impl'] for r in rows] == ['swin_dense', 'swin_dense_unfused']
    for row in rows:
        assert set(row) == KEYS and row['status'] == 'ok' and len(row['times_s']) == 2
        assert row['ms_per_image'] > 0 and 0 < row['cache_mib'] <= row['peak_mem_mib']
    ours, unfused = rows
    # fused vs plain Linear: fp32 summation order only, on LayerNorm-ed outputs ~1
    assert ours['max_abs_diff'] is None and max(unfused['max_abs_diff']) < 1e-5 and unfused['compare'] == 'compared'
    assert ours['speedup_vs_peer'] == 1.0 and unfused['speedup_vs_peer'] > 0


def test_train_rows_compare_a_gradient(state):
    impls = make_impls(['swin_dense', 'swin_dense_unfused'], ARCH, WINDOW, state, CPU)
    # chunks of 8 windows: stage 0 (16 windows of 4x4 tokens) runs in two, without many tiny checkpointed calls;
    # the MLP in stages 0 and 1 only
    args = bench_args(no_memory=True, attn_chunk=[8] * 4, mlp_chunk=[8, 8, 0, 0])
    rows = run_size(impls, (64, 64), 'train', True, args, print)
    assert rows[0]['attn_chunk'] == [8] * 4 and rows[0]['mlp_chunk'] == [8, 8, 0, 0]
    chunks = [(b.attn.chunk_size, b.mlp_chunk_size) for s in impls['swin_dense'].model.layers for b in s.blocks]
    assert chunks == [(8, 8)] * 4 + [(8, 0)] * 4
    # relative gradient difference of sums over every token, accumulated in another order (chunked vs whole)
    assert rows[1]['grad_rel_diff'] is not None and rows[1]['grad_rel_diff'] < 1e-4
    assert all(r['peak_mem_mib'] is None and r['cache_mib'] is None for r in rows)  # --no-memory


def test_memory_only_rows_are_not_timed(state):
    impls = make_impls(['swin_dense'], ARCH, WINDOW, state, CPU)
    row, = run_size(impls, (64, 64), 'forward', False, bench_args(memory_only=True, no_check=True), print)
    assert row['peak_mem_mib'] > 0 and row['ms_per_image'] is None and 'times_s' not in row
    assert row['note'] == 'memory only: first step' and impls['swin_dense'].model is None


class Broken(Impl):
    name = 'broken'

    def _build(self, size):
        raise RuntimeError('cannot build\nmore detail')


class FailsWhenTimed(Impl):
    """A tiny model whose second call (the first timed one, after the first step's memory) runs out of memory."""
    name = 'fails_when_timed'

    def _build(self, size):
        calls = []

        class Model(torch.nn.Module):
            def forward(self, x):
                calls.append(1)
                if len(calls) > 1:
                    raise MemoryError('out of memory')
                return (x.mean(1, keepdim=True),)
        return Model()

    def set_with_cp(self, flag):
        pass


def test_an_implementation_that_fails_is_a_row(state):
    logged = []
    impls = make_impls(['swin_dense'], ARCH, WINDOW, state, CPU)
    impls['broken'] = Broken(ARCH, WINDOW, state, CPU)
    impls['fails_when_timed'] = FailsWhenTimed(ARCH, WINDOW, state, CPU)
    rows = {r['impl']: r for r in run_size(impls, (64, 64), 'forward', False,
                                           bench_args(no_check=True), logged.append)}
    assert rows['broken']['status'] == 'error' and rows['broken']['error'] == 'RuntimeError: cannot build'
    assert logged == ['  broken: error: RuntimeError: cannot build']
    assert rows['fails_when_timed']['status'] == 'oom' and rows['fails_when_timed']['ms_per_image'] is None
    assert rows['swin_dense']['status'] == 'ok'
    for row in rows.values():
        assert row['speedup_vs_peer'] == (1.0 if row['impl'] == 'swin_dense' else None)
