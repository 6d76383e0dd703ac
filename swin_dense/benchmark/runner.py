"""One benchmark size: every implementation prepared, compared, timed (interleaved) and measured, as rows.

:func:`run_size` composes the other modules: :mod:`.peers` builds, :mod:`.agreement` compares,
:mod:`.measurement` times and measures; the rows it returns are what :mod:`.report` prints.
A peer that cannot run is an error (or oom) row, not a crash.
"""
import gc
import statistics
import traceback
from typing import Callable, Dict, List, Optional, Tuple

import torch

from .agreement import checked_grad, compare_rows, stage_outputs
from .measurement import interleaved_times, is_oom, make_step, memory_of, mib
from .peers import Impl, SwinDenseImpl

ROW_DEFAULTS = ('ms_per_image', 'images_per_s', 'peak_mem_mib', 'step_peak_mib', 'cache_mib', 'rss_growth_mib')


def parse_sizes(text: str) -> List[Tuple[int, int]]:
    """'512x512,800x1344' -> [(512, 512), (800, 1344)]; 'N' is NxN.

    Raises:
        ValueError: no size in ``text``.
    """
    sizes = []
    for item in text.split(','):
        item = item.strip().lower()
        if not item:
            continue
        h, _, w = item.partition('x')
        sizes.append((int(h), int(w or h)))
    if not sizes:
        raise ValueError(f'no sizes in {text!r}; use e.g. 512x512,800x1344')
    return sizes


def cp_settings(mode: str, with_cp: Optional[str]) -> List[bool]:
    """The activation-checkpointing settings to run: forward never checkpoints; train runs
    ``with_cp`` ('off', 'on', 'both'; default both)."""
    if mode == 'forward':
        return [False]
    return {'off': [False], 'on': [True], 'both': [False, True]}[with_cp or 'both']


def benchmark_input(size: Tuple[int, int], batch: int, seed: int, device: torch.device) -> torch.Tensor:
    """The seeded input batch of one size (the same for every implementation)."""
    h, w = size
    gen = torch.Generator().manual_seed(seed + h * 10007 + w)
    return torch.randn(batch, 3, h, w, generator=gen).to(device)


def short_error(err: BaseException) -> str:
    """Exception type and the first line of its message (300 characters at most)."""
    first = (str(err).strip().splitlines() or [''])[0]
    return f'{type(err).__name__}: {first[:300]}'


def run_size(impls: Dict[str, Impl], size: Tuple[int, int], mode: str, with_cp: bool, args,
             log: Callable[[str], None]) -> List[Dict]:
    """Rows of every implementation at one size, mode and checkpointing setting (see the module doc)."""
    device = torch.device(args.device)
    h, w = size
    x = benchmark_input(size, args.batch, args.seed, device)
    num_stages = next(iter(impls.values())).num_stages
    rows: Dict[str, Dict] = {}
    steps: Dict[str, Callable] = {}
    outputs: Dict[str, Tuple] = {}
    grads: Dict[str, torch.Tensor] = {}

    for name, impl in impls.items():
        chunked = isinstance(impl, SwinDenseImpl)  # the peers have no sequential mode
        row = rows[name] = dict(impl=name, size=f'{h}x{w}', height=h, width=w, mode=mode, with_cp=with_cp,
                                attn_chunk=args.attn_chunk if chunked else None,
                                mlp_chunk=args.mlp_chunk if chunked else None, batch=args.batch,
                                dtype=args.dtype, device=args.device, status='ok', error='', note='')
        try:
            step = _prepare(name, impl, row, size, x, mode, with_cp, args, device, outputs, grads)
            if step is not None:
                steps[name] = step
        except Exception as err:  # a peer that cannot run is reported, not fatal
            _fail(row, err)
            if args.verbose:
                traceback.print_exc()
            impl.model = None
            gc.collect()
            if device.type == 'cuda':
                torch.cuda.empty_cache()
            log(f'  {name}: {row["status"]}: {row["error"]}')

    compare_rows(rows, outputs, grads, size, num_stages, args.window)
    outputs.clear()

    times, failed = interleaved_times(steps, args.repeats, device)
    for name, err in failed.items():
        _fail(rows[name], err)
        steps.pop(name)
    for name, step in steps.items():
        _timing_and_memory(rows[name], times[name], step, args, device)
    for row in rows.values():
        for key in ROW_DEFAULTS:
            row.setdefault(key, None)
        row.setdefault('compare', '')
    add_ratios(rows)
    del steps, x
    if args.device == 'cuda':
        torch.cuda.empty_cache()
    return list(rows.values())


def _prepare(name: str, impl: Impl, row: Dict, size: Tuple[int, int], x: torch.Tensor, mode: str,
             with_cp: bool, args, device: torch.device, outputs: Dict, grads: Dict) -> Optional[Callable]:
    """Build and configure ``impl``; measure its first step's memory; take its outputs (and gradient)
    for the agreement check; warm it up. Returns the step to time (None with ``--memory-only``)."""
    model = impl.build(size)
    impl.set_with_cp(with_cp)
    impl.set_chunks(args.attn_chunk, args.mlp_chunk)
    row['note'] = impl.note
    # The first step at this size fills whatever the implementation caches (masks, position
    # bias): those bytes count towards its memory, on top of the steady-state step peak.
    first = make_step(model, x, mode, args.dtype)
    if args.no_memory:
        first()
    else:
        first_peak, retained = memory_of(first, device)
        row['cache_mib'] = (max(retained, 0) + impl.static_buffer_bytes()) / 2 ** 20
        if args.memory_only:  # the first step's peak, caches it filled included; no timing
            row['peak_mem_mib'] = first_peak / 2 ** 20 + impl.static_buffer_bytes() / 2 ** 20
            row['rss_growth_mib'] = mib(getattr(first, 'rss_growth', None))
            row['note'] = (row['note'] + '; ' if row['note'] else '') + 'memory only: first step'
            del model, first
            impl.model = None  # free it before the next implementation's step
            gc.collect()
            return None
    if not args.no_check:
        outputs[name] = stage_outputs(model, x)
        if mode == 'train' and args.dtype == 'fp32':
            grads[name] = checked_grad(model, x, impl.param_for_grad_check)
    step = make_step(model, x, mode, args.dtype)  # (sets train / eval mode again)
    for _ in range(args.warmup - 1):
        step()
    return step


def _fail(row: Dict, err: BaseException) -> None:
    row['status'] = 'oom' if is_oom(err) else 'error'
    row['error'] = short_error(err)


def _timing_and_memory(row: Dict, ts: List[float], step: Callable, args, device: torch.device) -> None:
    """Median time of the runs ``ts``, per image and images/s; the steady-state step's memory."""
    row['times_s'] = ts
    row['median_s'] = statistics.median(ts) if ts else None
    row['ms_per_image'] = 1000 * row['median_s'] / args.batch if ts else None
    row['images_per_s'] = args.batch / row['median_s'] if ts else None
    if not args.no_memory:
        try:
            row['step_peak_mib'] = memory_of(step, device)[0] / 2 ** 20
            row['peak_mem_mib'] = row['step_peak_mib'] + row.get('cache_mib', 0.0)
        except Exception as err:  # noqa: BLE001 (reported in the row)
            row['peak_mem_mib'] = None
            row['error'] = f'memory: {short_error(err)}'


def add_ratios(rows: Dict[str, Dict]) -> None:
    """``speedup_vs_peer`` (peer time / swin_dense time) and ``mem_ratio_peer_over_ours`` of every row."""
    base = rows.get('swin_dense', {})
    for row in rows.values():
        row['speedup_vs_peer'] = (row['ms_per_image'] / base['ms_per_image']
                                  if row['ms_per_image'] and base.get('ms_per_image') else None)
        row['mem_ratio_peer_over_ours'] = (row['peak_mem_mib'] / base['peak_mem_mib']
                                           if row['peak_mem_mib'] and base.get('peak_mem_mib') else None)
