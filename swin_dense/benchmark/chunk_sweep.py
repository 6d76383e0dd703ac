"""What sequential attention and MLP chunks cost in time and save in memory, setting by setting (``--chunk-sweep``).

One swin_dense backbone with the benchmark's random weights; each setting is a pair of per-stage
chunk lists (``attn_chunk_size``, ``mlp_chunk_size``) and a ``with_cp`` flag, switched on the built
model (:func:`.peers.set_chunks`), so every setting runs the same weights.

* Measured (:func:`run_sweep`): the train step of :mod:`.measurement`, timed over ``repeats``
  interleaved rounds of all settings after ``warmup`` untimed steps each (the order rotated every
  round, so a noisy machine's drift is shared); the minimum and the median; the step's peak of
  tensors from one more, untimed step (:func:`.measurement.memory_of`).
* Traced (:func:`trace_sweep`): the peak of live tensors of one train step with fake tensors
  (:mod:`.traced_memory`: shapes only, no compute, no time), for sizes a CPU cannot run; weight
  gradients included, weights excluded.
"""
from typing import Callable, Dict, List, Sequence, Tuple

import torch
import torch.nn as nn

from ..arch import per_stage
from ..models import SwinTransformerV2
from .meta import empty_parameters
from .measurement import interleaved_times, make_step, memory_of
from .peers import set_chunks, set_with_cp
from .report import format_chunks
from .traced_memory import traced_train_peak

#: attention chunks in no stage / the first / the first two / all, MLP chunks alone, and both
DEFAULT_SETTINGS = '0/0;16,0,0,0/0;16,16,0,0/0;16/0;0/16;16,16,0,0/16,16,0,0;16/16'

Setting = Tuple[List[int], List[int]]


def parse_settings(text: str, num_stages: int) -> List[Setting]:
    """'ATTN/MLP;ATTN/MLP' -> [(attn chunks per stage, MLP chunks per stage), ...].

    ATTN and MLP are one number of windows for every stage or one per stage, comma-separated
    (``16,16,0,0``); 0 is off.

    Raises:
        ValueError: a setting without one '/', a value that is not a whole number, a negative one, or a
            list whose length is neither 1 nor ``num_stages``.
    """
    settings = []
    for item in (s.strip() for s in text.split(';')):
        if not item:
            continue
        if item.count('/') != 1:
            raise ValueError(f'chunk setting {item!r}: write ATTN/MLP, e.g. 16,16,0,0/0')
        attn, mlp = (per_stage(parse_chunks(part), num_stages, name)
                     for part, name in zip(item.split('/'), ('attention chunks', 'MLP chunks')))
        settings.append((attn, mlp))
    if not settings:
        raise ValueError(f'no chunk settings in {text!r}; use e.g. {DEFAULT_SETTINGS}')
    return settings


def parse_chunks(text: str) -> List[int]:
    """'16' -> [16]; '16,16,0,0' -> [16, 16, 0, 0] (windows per call; 0 is off).

    Raises:
        ValueError: a value that is not a whole number, or a negative one.
    """
    try:
        values = [int(v) for v in text.split(',')]
    except ValueError:
        raise ValueError(f'chunk sizes {text!r}: give one whole number of windows, or one per stage '
                         'separated by commas (e.g. 16,16,0,0)') from None
    if any(v < 0 for v in values):
        raise ValueError(f'chunk sizes {text!r}: use 0 (off) or a positive number of windows')
    return values


def run_sweep(backbone: SwinTransformerV2, x: torch.Tensor, settings: Sequence[Setting],
              with_cp: Sequence[bool], repeats: int, warmup: int,
              log: Callable[[str], None] = lambda msg: None) -> List[Dict]:
    """Time and peak memory of one train step of ``backbone`` on ``x`` (B, 3, H, W) under every setting.

    ``log`` gets one line per phase (warm-up, timed rounds, each memory step), for runs of hours.

    Returns:
        one row per (with_cp, setting): ``attn``, ``mlp``, ``with_cp``, ``times_s`` (every timed step),
        ``min_s``, ``median_s``, ``peak_mib`` (the step's tensors, gradients included).
    """
    steps: Dict[Tuple, Callable] = {}
    for cp in with_cp:
        for attn, mlp in settings:
            steps[(cp, tuple(attn), tuple(mlp))] = _configured_step(backbone, x, attn, mlp, cp)
    for key, step in steps.items():
        for _ in range(warmup):
            step()
        log(f'  warmed up {key}')
    times, failed = interleaved_times(steps, repeats, x.device)
    log(f'  timed {repeats} round(s)')
    if failed:
        key, err = next(iter(failed.items()))
        raise RuntimeError(f'chunk setting {key} failed: {err}') from err
    rows = []
    for (cp, attn, mlp), step in steps.items():
        ts = sorted(times[(cp, attn, mlp)])
        peak, _ = memory_of(step, x.device)
        log(f'  measured the peak of {(cp, attn, mlp)}')
        rows.append(dict(attn=list(attn), mlp=list(mlp), with_cp=cp, times_s=ts, min_s=ts[0],
                         median_s=ts[len(ts) // 2], peak_mib=peak / 2 ** 20))
    return rows


def trace_sweep(backbone_kwargs: Dict, inputs: Tuple[int, int, int, int], settings: Sequence[Setting],
                with_cp: Sequence[bool], log: Callable[[str], None] = lambda msg: None) -> List[Dict]:
    """Traced peak (and largest tensor) of one train step on ``inputs`` (B, 3, H, W) under every setting.

    Args:
        backbone_kwargs: :class:`SwinTransformerV2` arguments; each setting builds it afresh with its
            parameters on the meta device (no weights are allocated).
        log: gets one line per traced setting.

    Returns:
        one row per (with_cp, setting): ``attn``, ``mlp``, ``with_cp``, ``peak_mib``, ``largest_mib``.
    """
    rows = []
    for cp in with_cp:
        for attn, mlp in settings:
            with empty_parameters():
                backbone = SwinTransformerV2(**backbone_kwargs, with_cp=cp, attn_chunk_size=attn,
                                             mlp_chunk_size=mlp).train()
            traced = traced_train_peak(backbone, inputs)
            rows.append(dict(attn=list(attn), mlp=list(mlp), with_cp=cp, peak_mib=traced['peak'] / 2 ** 20,
                             largest_mib=traced['largest'] / 2 ** 20))
            log(f'  traced {rows[-1]}')
    return rows


def sweep_markdown(rows: List[Dict]) -> str:
    """The rows as a markdown table; with timings, each time also as a ratio to the setting without
    chunks (same ``with_cp``), and each peak as a ratio to it."""
    timed = 'min_s' in rows[0]
    base = {r['with_cp']: r for r in rows if not any(r['attn']) and not any(r['mlp'])}
    head = ['with_cp', '`attn_chunk_size`', '`mlp_chunk_size`']
    head += (['step s (min)', 'step s (median)', 'time / no chunks', 'peak MiB', 'peak / no chunks'] if timed
             else ['peak MiB (traced)', 'largest tensor MiB', 'peak / no chunks'])
    lines = ['| ' + ' | '.join(head) + ' |', '|---|---|---|' + '---:|' * (len(head) - 3)]
    for r in rows:
        ref = base.get(r['with_cp'])
        cells = [str(r['with_cp']), format_chunks(r['attn']), format_chunks(r['mlp'])]
        if timed:
            cells += [f"{r['min_s']:.2f}", f"{r['median_s']:.2f}", _ratio(r, ref, 'min_s')]
        cells += [f"{r['peak_mib']:.0f}"] + ([] if timed else [f"{r['largest_mib']:.0f}"])
        cells.append(_ratio(r, ref, 'peak_mib'))
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def _configured_step(backbone: nn.Module, x: torch.Tensor, attn: Sequence[int], mlp: Sequence[int],
                     cp: bool) -> Callable:
    step = make_step(backbone, x, 'train', 'fp32')

    def configured():
        set_chunks(backbone, attn, mlp)
        set_with_cp(backbone, cp)
        return step()
    configured.release = step.release
    return configured


def _ratio(row: Dict, ref: Dict, key: str) -> str:
    return f'{row[key] / ref[key]:.2f}' if ref else '-'


__all__ = ['DEFAULT_SETTINGS', 'parse_chunks', 'parse_settings', 'run_sweep', 'sweep_markdown', 'trace_sweep']
