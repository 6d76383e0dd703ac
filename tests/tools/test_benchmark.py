"""tools/benchmark.py end to end on a tiny architecture: rows, agreement, timings, memory, JSON."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

pytestmark = [
    pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in ('timm', 'mmpretrain')),
                       reason='the peers (timm, mmpretrain) are optional: pip install swin_dense[bench]'),
    pytest.mark.e2e,  # subprocess runs of the tool; tests/benchmark tests its modules in-process
]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, 'tools', 'benchmark.py')
ARCH = '{"embed_dims": 16, "depths": [2, 2, 2, 2], "num_heads": [1, 2, 4, 8]}'


@pytest.fixture(scope='module')
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp('bench') / 'rows.json'
    # 128x128: every stage map (32, 16, 8, 4) is a window multiple, so all three are compared.
    # 112x144: stage 1 is 14x18 with shifted windows of 4, where timm's masks are wrong (not compared);
    #          mmpretrain still agrees.
    # 64x64: stage 3 is 2x2 < window 4, which mmpretrain (pad_small_map=False) refuses: an error row.
    cmd = [sys.executable, TOOL, '--arch-json', ARCH, '--window', '4', '--sizes', '128x128,112x144,64x64',
           '--mode', 'forward,train', '--repeats', '1', '--warmup', '1', '--threads', '1', '--json', str(out),
           '--markdown']
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(out) as f:
        return json.load(f), proc.stdout


def _rows(report, **match):
    return [r for r in report[0]['rows'] if all(r[k] == v for k, v in match.items())]


def test_a_row_per_impl_size_mode_and_checkpointing(report):
    rows = report[0]['rows']
    keys = {(r['impl'], r['size'], r['mode'], r['with_cp']) for r in rows}
    for impl in ('swin_dense', 'timm', 'mmpretrain'):
        for size in ('128x128', '112x144', '64x64'):
            assert (impl, size, 'forward', False) in keys
            assert (impl, size, 'train', False) in keys
            assert (impl, size, 'train', True) in keys
    assert len(rows) == len(keys) == 3 * 3 * 3


def test_outputs_agree_where_compared(report):
    compared = [r for r in report[0]['rows'] if r['max_abs_diff'] is not None]
    assert {r['impl'] for r in compared} == {'timm', 'mmpretrain'}
    for r in compared:
        assert len(r['max_abs_diff']) == 4
        # fp32 vs fp32 of another library on LayerNorm-ed outputs: both carry their kernels' rounding
        # (tests/numerics.py); 1e-4 says 'the same model', a wrong mapping is O(0.1)
        assert max(r['max_abs_diff']) < 1e-4, r
        if r['grad_rel_diff'] is not None:
            # relative difference of gradients summed over all tokens in two libraries' orders
            assert r['grad_rel_diff'] < 1e-3, r
    assert all(r['max_abs_diff'] is not None for r in _rows(report, size='128x128', status='ok')
               if r['impl'] != 'swin_dense')


def test_timm_is_timed_but_not_compared_where_its_masks_are_wrong(report):
    for r in _rows(report, impl='timm', size='112x144'):
        assert r['status'] == 'ok' and r['ms_per_image'] > 0
        assert r['max_abs_diff'] is None and r['compare'].startswith('not compared')
    for r in _rows(report, impl='mmpretrain', size='112x144'):
        # as in test_outputs_agree_where_compared
        assert r['max_abs_diff'] is not None and max(r['max_abs_diff']) < 1e-4


def test_a_peer_that_cannot_run_is_a_row_not_a_crash(report):
    for r in _rows(report, impl='mmpretrain', size='64x64'):
        assert r['status'] == 'error' and 'pad_small_map' in r['error']
        assert r['ms_per_image'] is None
    for r in _rows(report, impl='swin_dense', size='64x64'):
        assert r['status'] == 'ok'


def test_times_memory_and_ratios_are_positive(report):
    for r in report[0]['rows']:
        if r['status'] != 'ok':
            continue
        assert r['ms_per_image'] > 0 and r['images_per_s'] > 0
        assert len(r['times_s']) == 1 and all(t > 0 for t in r['times_s'])
        assert r['peak_mem_mib'] is not None and r['peak_mem_mib'] > 0
        assert r['cache_mib'] is not None and 0 <= r['cache_mib'] <= r['peak_mem_mib']
        assert r['speedup_vs_peer'] > 0
        if r['impl'] == 'swin_dense':
            # its own time over its own time: 1 up to float division
            assert r['speedup_vs_peer'] == pytest.approx(1.0)


def test_markdown_and_environment(report):
    data, stdout = report
    assert '| size | mode | with_cp | impl |' in stdout
    assert data['environment']['torch']


def test_swin_dense_caches_count_towards_its_memory(report):
    """Its masks and (in eval) biases are cached by the first step at a size: they are counted.

    (Later modes at the same size find the masks cached already, so only the forward row, which runs
    first, necessarily shows them.)"""
    row, = _rows(report, impl='swin_dense', size='128x128', mode='forward')
    assert row['cache_mib'] > 0, row


def test_unfused_variant_runs_plain_linears_with_the_same_outputs(tmp_path):
    out = tmp_path / 'rows.json'
    cmd = [sys.executable, TOOL, '--arch-json', ARCH, '--window', '4', '--sizes', '64x96', '--mode', 'forward',
           '--impls', 'swin_dense,swin_dense_unfused', '--repeats', '1', '--warmup', '1', '--threads', '1',
           '--json', str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(out) as f:
        rows = {r['impl']: r for r in json.load(f)['rows']}
    assert rows['swin_dense']['status'] == rows['swin_dense_unfused']['status'] == 'ok'
    # fused vs plain Linear: fp32 summation order only
    assert max(rows['swin_dense_unfused']['max_abs_diff']) < 1e-5


def test_time_parts_splits_a_forward_with_its_gflop():
    cmd = [sys.executable, TOOL, '--arch-json', ARCH, '--window', '4', '--sizes', '64x96', '--time-parts',
           '--repeats', '1', '--warmup', '1', '--threads', '1']
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = {line[:42].strip(): line[42:].split() for line in proc.stdout.splitlines()[-5:]}
    assert set(rows) == {'MLP (fc1 + GELU, fc2)', 'window attention (qkv, attention, proj)',
                         'of which output projection', 'patch merging', 'everything else'}
    # 2 blocks per stage at 16/32/64/128 channels, 16x24 / 8x12 / 4x6 / 2x3 tokens: MLP 2 * 2 * 4C^2 per token.
    expected_mlp = sum(2 * 2 * 4 * (16 * 2 ** i) ** 2 * (384 >> 2 * i) * 2 for i in range(4)) / 1e9
    # the table prints GFLOP with 3 decimals
    assert float(rows['MLP (fc1 + GELU, fc2)'][2]) == pytest.approx(expected_mlp, abs=1e-3)
    assert all(float(r[0]) >= 0 for r in rows.values())


def test_per_stage_chunks_reach_the_rows_and_wrong_lengths_are_refused(tmp_path):
    out = tmp_path / 'rows.json'
    cmd = [sys.executable, TOOL, '--arch-json', ARCH, '--window', '4', '--sizes', '64x64', '--mode', 'train',
           '--with-cp', 'on', '--impls', 'swin_dense', '--attn-chunk', '2,2,0,0', '--mlp-chunk', '0',
           '--repeats', '1', '--warmup', '1', '--threads', '1', '--no-check', '--markdown', '--json', str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(out) as f:
        row, = json.load(f)['rows']
    assert row['attn_chunk'] == [2, 2, 0, 0] and row['mlp_chunk'] == [0, 0, 0, 0] and row['status'] == 'ok'
    assert '| swin_dense (attn chunks [2, 2, 0, 0], MLP chunks 0) |' in proc.stdout
    bad = subprocess.run(cmd[:cmd.index('--attn-chunk') + 1] + ['2,2,0'], capture_output=True, text=True,
                         timeout=300, cwd=ROOT)
    assert bad.returncode == 2 and '--attn-chunk needs one value per stage (4)' in bad.stderr


def test_chunk_sweep_traced_prints_one_row_per_setting():
    cmd = [sys.executable, TOOL, '--arch-json', ARCH, '--window', '8', '--sizes', '128x128', '--chunk-sweep',
           '0/0;2,0,0,0/2,0,0,0', '--traced', '--with-cp', 'both']
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = proc.stdout[proc.stdout.index('| with_cp |'):].splitlines()
    assert [line.split('|')[1:4] for line in table[2:]] == [
        [' False ', ' 0 ', ' 0 '], [' False ', ' [2, 0, 0, 0] ', ' [2, 0, 0, 0] '],
        [' True ', ' 0 ', ' 0 '], [' True ', ' [2, 0, 0, 0] ', ' [2, 0, 0, 0] ']]
    ratios = [float(line.split('|')[-2]) for line in table[2:]]
    # each against its own with_cp setting: 1 for no chunks, below 1 with stage 0 chunked (traced: 0.78 / 0.90)
    assert ratios[0] == ratios[2] == 1.0 and ratios[1] < 1 and ratios[3] < 1
