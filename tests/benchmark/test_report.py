"""swin_dense.benchmark.report: row lines, the markdown table, JSON and the plot."""
import importlib.util
import json
import sys

import pytest

from swin_dense.benchmark.extras import MissingExtra
from swin_dense.benchmark.report import environment, format_row, markdown_table, plot, write_json


def _row(**overrides):
    row = dict(impl='timm', size='512x512', height=512, width=512, mode='forward', with_cp=False, attn_chunk=None,
               mlp_chunk=None,
               status='ok', error='', note='static masks', ms_per_image=1202.3, images_per_s=0.83,
               peak_mem_mib=162.4, cache_mib=23.1, rss_growth_mib=None, speedup_vs_peer=1.74,
               mem_ratio_peer_over_ours=0.74, max_abs_diff=[5e-6, 6e-6, 5e-6, 7e-6], grad_rel_diff=None,
               compare='compared')
    row.update(overrides)
    return row


def test_format_row():
    line = format_row(_row())
    assert line.split() == ['timm', '1202.3', 'ms/img', '0.83', 'img/s', 'peak', '162.4', 'MiB', '(cache', '23.1)',
                            'swin_dense', '1.74x', 'faster', 'mem', '0.74x', 'ours', 'max|diff|', 'per', 'stage',
                            '5.0e-06', '6.0e-06', '5.0e-06', '7.0e-06', '[static', 'masks]']
    assert format_row(_row(status='error', error='RuntimeError: x')) == '       timm  error: RuntimeError: x'
    untimed = format_row(_row(ms_per_image=None, peak_mem_mib=None, max_abs_diff=None,
                              compare='not compared: why', note='memory only: first step', rss_growth_mib=12.0))
    assert '(not timed)' in untimed and 'peak      n/a' in untimed and 'not compared: why' in untimed
    assert 'RSS +12 MiB' in untimed


def test_markdown_table():
    rows = [_row(impl='swin_dense', attn_chunk=[16, 16, 0, 0], mlp_chunk=[0] * 4, speedup_vs_peer=1.0,
                 max_abs_diff=None, compare=''), _row(),
            _row(impl='mmpretrain', status='error', error='AssertionError: pad_small_map'),
            _row(impl='mmpretrain', size='800x1344', peak_mem_mib=None, error='memory: MemoryError: out of memory',
                 max_abs_diff=None, compare='not compared: stage 0')]
    lines = markdown_table(rows).splitlines()
    assert lines[0].startswith('| size | mode | with_cp | impl | ms / image |') and len(lines) == 6
    assert lines[2] == ('| 512x512 | forward | False | swin_dense (attn chunks [16, 16, 0, 0], MLP chunks 0) | '
                        '1202.3 | 0.83 | 162 (23) | - | - | - |')
    assert lines[3].endswith('| 1.74 | 0.74 | 5e-06 / 6e-06 / 5e-06 / 7e-06 |')
    assert lines[4] == '| 512x512 | forward | False | mmpretrain | error: AssertionError: pad_small_map | | | | | |'
    assert '| oom |' in lines[5] and lines[5].endswith('| not compared |')


def test_write_json(tmp_path):
    path = tmp_path / 'rows.json'
    write_json(str(path), {'torch': '2'}, ['--sizes', '64'], [_row()])
    data = json.loads(path.read_text())
    assert data['environment'] == {'torch': '2'} and data['argv'] == ['--sizes', '64'] and data['rows'] == [_row()]


def test_environment():
    env = environment()
    assert env['torch'] and env['python'] and env['cpu_count'] >= 1
    assert all(mod in env for mod in ('timm', 'mmpretrain', 'mmcv', 'mmengine'))


def test_plot_without_matplotlib_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'matplotlib', None)
    with pytest.raises(MissingExtra, match=r'--plot needs matplotlib.*pip install swin_dense\[bench\]'):
        plot([_row()], str(tmp_path / 'plot.png'), 'title')


@pytest.mark.skipif(importlib.util.find_spec('matplotlib') is None, reason='matplotlib: pip install swin_dense[bench]')
def test_plot(tmp_path):
    path = tmp_path / 'plot.png'
    plot([_row(), _row(size='800x1344', height=800, width=1344), _row(impl='x', status='error')], str(path), 'title')
    assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
