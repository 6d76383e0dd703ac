"""Steps, their time and their memory.

* Forward: ``model.eval()`` under ``torch.no_grad()``. Train: ``model.train()``, forward + backward of
  ``sum(out.float().mean() ** 2 for out in outputs)``; each step first sets the gradients to None (as
  ``zero_grad`` does; timed).
* Time: median over ``repeats`` interleaved runs (implementation order rotated every round) after
  the warm-up runs; per image = median / batch (:func:`interleaved_times`).
* Peak memory = cache + step peak. Step peak, CUDA: ``torch.cuda.max_memory_allocated()`` during one
  steady-state step minus the memory allocated before it (gradients of earlier steps released). CPU:
  the same quantity for torch's CPU allocator, from the allocation and free events that
  ``torch.profiler(profile_memory=True)`` records during one (separate, untimed) step: the highest
  running total of bytes allocated minus bytes freed. Cache: what the *first* step at a size leaves
  allocated (swin_dense's masks and, in eval, its position-bias and bias+mask caches; mmpretrain
  rebuilds its masks every step) plus timm's init-time mask buffers. Tensors only: no allocator
  cache, no oneDNN scratch outside torch's allocator, no Python objects; parameters and the input
  are not counted (:func:`memory_of`).
"""
import contextlib
import gc
import time
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn as nn


def make_step(model: nn.Module, x: torch.Tensor, mode: str, dtype: str) -> Callable[[], Tuple]:
    """One forward (``mode='forward'``) or train step (``'train'``) of ``model`` on ``x``, as a callable.

    ``dtype='bf16'`` runs under ``torch.autocast(bfloat16)``. A train step has ``release()``, which
    drops the gradients it left.
    """
    autocast = (lambda: torch.autocast(device_type=x.device.type, dtype=torch.bfloat16)) if dtype == 'bf16' \
        else contextlib.nullcontext
    if mode == 'forward':
        model.eval()

        def step():
            with torch.no_grad(), autocast():
                return model(x)
    else:
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]

        def step():
            for p in params:
                p.grad = None
            with autocast():
                outs = model(x)
                loss = sum(o.float().mean() ** 2 for o in outs)
            loss.backward()
            return tuple(o.detach() for o in outs)

        def release():
            for p in params:
                p.grad = None
        step.release = release
    return step


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); nothing on CPU."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed(step: Callable, device: torch.device) -> float:
    """Seconds of one call of ``step``, the device synchronised before and after."""
    sync(device)
    start = time.perf_counter()
    step()
    sync(device)
    return time.perf_counter() - start


def interleaved_times(steps: Dict[str, Callable], repeats: int,
                      device: torch.device) -> Tuple[Dict[str, List[float]], Dict[str, BaseException]]:
    """``repeats`` rounds of one timed call of every step, the order rotated by one every round.

    Interleaving spreads the drift of a shared, noisy machine (other tenants, thermal state) over
    all implementations alike, so that their ratios hold even when absolute times do not. This is
    why ``torch.utils.benchmark.Timer`` is not used here: it times one statement in consecutive
    blocks (and adds untimed warm-up calls to every ``timeit``), so implementations measured one after
    the other would see different machine states; a one-call ``Timer`` would be this function's
    ``perf_counter`` with a synchronisation, plus two warm-up calls per measured call.

    Returns:
        (seconds of every call per step name, the error of each step that raised; it is not called again).
    """
    times: Dict[str, List[float]] = {name: [] for name in steps}
    failed: Dict[str, BaseException] = {}
    order = list(steps)
    for r in range(repeats):
        shift = r % len(order) if order else 0
        for name in order[shift:] + order[:shift]:
            if name in failed:
                continue
            try:
                times[name].append(timed(steps[name], device))
            except Exception as err:  # noqa: BLE001 (reported in the row)
                failed[name] = err
    return times, failed


def memory_of(step: Callable, device: torch.device) -> Tuple[int, int]:
    """(peak, retained): bytes allocated by torch during one step above what was allocated before it,
    at the highest point and at the end (what the step left allocated, e.g. caches it filled)."""
    release = getattr(step, 'release', lambda: None)  # train steps: gradients are not kept between steps
    release()
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        step()
        release()
        gc.collect()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base, torch.cuda.memory_allocated(device) - base
    from torch.profiler import ProfilerActivity, profile
    rss_reset()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
        release()
        gc.collect()
    step.rss_growth = rss_growth()
    events = [e for e in prof.profiler.kineto_results.events()
              if e.name() == '[memory]' and e.device_type() == torch.autograd.DeviceType.CPU]
    events.sort(key=lambda e: e.start_ns())
    return peak_and_total([e.nbytes() for e in events])


def peak_and_total(nbytes: List[int]) -> Tuple[int, int]:
    """(highest running total, final total) of allocation (+) and free (-) sizes in event order."""
    total = peak = 0
    for n in nbytes:
        total += n
        peak = max(peak, total)
    return peak, total


_RSS_BASE = [None]


def _status_kib(field: str) -> Optional[int]:
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_reset() -> None:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS (Linux; silently nothing elsewhere)."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        _RSS_BASE[0] = _status_kib('VmRSS')
    except OSError:
        _RSS_BASE[0] = None


def rss_growth() -> Optional[int]:
    """Bytes the process's peak RSS rose above its RSS at the last :func:`rss_reset`, or None."""
    hwm = _status_kib('VmHWM')
    if _RSS_BASE[0] is None or hwm is None:
        return None
    return (hwm - _RSS_BASE[0]) * 1024


def is_oom(err: BaseException) -> bool:
    """Whether ``err`` means out of memory (Python, CUDA, or an allocator's message)."""
    text = str(err)
    return isinstance(err, (MemoryError, getattr(torch.cuda, 'OutOfMemoryError', MemoryError))) or \
        "can't allocate memory" in text or 'out of memory' in text.lower()


def mib(nbytes: Optional[int]) -> Optional[float]:
    """Bytes in MiB (None stays None)."""
    return None if nbytes is None else nbytes / 2 ** 20
