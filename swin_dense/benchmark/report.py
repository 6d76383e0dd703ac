"""The benchmark's rows as text: one line per row, a markdown table, a JSON file and a plot.

A row is a dict (one per implementation, size, mode and checkpointing setting) with the keys the
JSON file holds; ``None`` marks what was not measured.
"""
import json
import os
import platform
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from .extras import require
from .measurement import is_oom


def environment() -> Dict:
    """Versions of Python, torch and the peers, and the machine (load average included)."""
    versions = {'python': platform.python_version(), 'torch': torch.__version__}
    for mod in ('timm', 'mmpretrain', 'mmcv', 'mmengine'):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception as err:  # noqa: BLE001
            versions[mod] = f'unavailable ({type(err).__name__})'
    versions.update(machine=platform.machine(), processor=platform.processor() or '', cpu_count=os.cpu_count(),
                    torch_threads=torch.get_num_threads(),
                    loadavg=os.getloadavg() if hasattr(os, 'getloadavg') else None)
    if torch.cuda.is_available():
        versions['cuda_device'] = torch.cuda.get_device_name()
    return versions


def format_row(row: Dict) -> str:
    """One line: time, memory, ratios to swin_dense, agreement, note."""
    if row['status'] != 'ok':
        return f'{row["impl"]:>11}  {row["status"]}: {row["error"]}'
    if row['ms_per_image'] is None:
        parts = [f'{row["impl"]:>11}', '  (not timed)']
    else:
        parts = [f'{row["impl"]:>11}', f'{row["ms_per_image"]:9.1f} ms/img', f'{row["images_per_s"]:7.2f} img/s']
    parts.append(f'peak {row["peak_mem_mib"]:8.1f} MiB (cache {row["cache_mib"] or 0:.1f})'
                 if row['peak_mem_mib'] is not None else 'peak      n/a')
    if row.get('rss_growth_mib') is not None and 'memory only' in row['note']:
        parts.append(f'RSS +{row["rss_growth_mib"]:.0f} MiB')  # meaningful in a fresh process only
    if row['impl'] != 'swin_dense':
        if row['speedup_vs_peer']:
            parts.append(f'swin_dense {row["speedup_vs_peer"]:.2f}x faster')
        if row['mem_ratio_peer_over_ours']:
            parts.append(f'mem {row["mem_ratio_peer_over_ours"]:.2f}x ours')
    if row['max_abs_diff'] is not None:
        parts.append('max|diff| per stage ' + ' '.join(f'{d:.1e}' for d in row['max_abs_diff']))
        if row['grad_rel_diff'] is not None:
            parts.append(f'grad rel diff {row["grad_rel_diff"]:.1e}')
    elif row['compare']:
        parts.append(row['compare'])
    if row['note']:
        parts.append(f'[{row["note"]}]')
    return '  '.join(parts)


def markdown_table(rows: List[Dict]) -> str:
    """The table of docs/benchmarks.md."""
    lines = ['| size | mode | with_cp | impl | ms / image | images / s | peak MiB (cache) | swin_dense speed-up | '
             'peer mem / ours | max abs diff (stages) |',
             '|---|---|---|---|---:|---:|---:|---:|---:|---|']

    def num(v, fmt):
        return format(v, fmt) if v is not None else '-'

    def mem_cell(r):
        if r['peak_mem_mib'] is None:
            return 'oom' if r['error'].startswith('memory:') and is_oom(RuntimeError(r['error'])) else '-'
        return f'{r["peak_mem_mib"]:.0f} ({num(r["cache_mib"], ".0f")})'

    for r in rows:
        if r['status'] != 'ok':
            lines.append(f'| {r["size"]} | {r["mode"]} | {r["with_cp"]} | {r["impl"]} | {r["status"]}: '
                         f'{r["error"][:80]} | | | | | |')
            continue
        diff = (' / '.join(f'{d:.0e}' for d in r['max_abs_diff']) if r['max_abs_diff'] is not None
                else ('not compared' if r['compare'].startswith('not compared') else '-'))
        chunk = chunk_label(r['attn_chunk'], r['mlp_chunk'])
        lines.append(f'| {r["size"]} | {r["mode"]} | {r["with_cp"]} | {r["impl"]}{chunk} | '
                     f'{num(r["ms_per_image"], ".1f")} | {num(r["images_per_s"], ".2f")} | '
                     f'{mem_cell(r)} | '
                     f'{"-" if r["impl"] == "swin_dense" else num(r["speedup_vs_peer"], ".2f")} | '
                     f'{"-" if r["impl"] == "swin_dense" else num(r["mem_ratio_peer_over_ours"], ".2f")} | '
                     f'{diff} |')
    return '\n'.join(lines)


def format_chunks(values: List[int]) -> str:
    """Per-stage chunk sizes as written in configs: one number when all stages agree, else the list."""
    return str(values[0]) if len(set(values)) == 1 else '[' + ', '.join(map(str, values)) + ']'


def chunk_label(attn: Optional[List[int]], mlp: Optional[List[int]]) -> str:
    """' (attn chunks A, MLP chunks M)' for a row in sequential mode, '' otherwise (or for a peer: None)."""
    if not attn or not (any(attn) or any(mlp)):
        return ''
    return f' (attn chunks {format_chunks(attn)}, MLP chunks {format_chunks(mlp)})'


def write_json(path: str, env: Dict, argv: Optional[Sequence[str]], rows: List[Dict]) -> None:
    """All rows, with the environment and the command line's arguments."""
    with open(path, 'w') as f:
        json.dump(dict(environment=env, argv=list(argv or []), rows=rows), f, indent=1)


def plot(rows: List[Dict], path: str, title: str) -> None:
    """PNG of median time per image and peak memory against input size (megapixels), one line per
    implementation, mode and checkpointing setting. Needs matplotlib (``pip install swin_dense[bench]``)."""
    matplotlib = require('matplotlib', '--plot')
    matplotlib.use('Agg')
    plt = require('matplotlib.pyplot', '--plot')
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    series: Dict[Tuple, List[Dict]] = {}
    for r in rows:
        if r['status'] == 'ok':
            series.setdefault((r['impl'], r['mode'], r['with_cp']), []).append(r)
    for (impl, mode, cp), rs in sorted(series.items()):
        rs = sorted(rs, key=lambda r: r['height'] * r['width'])
        mpix = [r['height'] * r['width'] / 1e6 for r in rs]
        label = impl + (f' {mode}' if len({k[1] for k in series}) > 1 else '') + (' +cp' if cp else '')
        style = '-' if not cp else '--'
        ax_t.plot(mpix, [r['ms_per_image'] for r in rs], style, marker='o', label=label)
        if any(r['peak_mem_mib'] is not None for r in rs):
            ax_m.plot(mpix, [r['peak_mem_mib'] for r in rs], style, marker='o', label=label)
    for ax, ylabel in ((ax_t, 'median ms / image'), (ax_m, 'peak memory (MiB)')):
        ax.set_xlabel('input size (megapixels)')
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
