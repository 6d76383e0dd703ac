"""Agreement with swin_dense, stage by stage: max abs difference of every stage output, and in train
mode the relative difference of one gradient.

Outputs are taken in fp32, eval, without gradients (in train mode too: dropout and drop path are 0);
the gradient is the patch-embedding weight's after one fp32 train step. timm is not compared where
it computes another function by construction (:func:`timm_comparable`).
"""
from typing import Callable, Dict, Optional, Tuple

import torch
import torch.nn as nn

from ..layers.swin_block import effective_window
from .measurement import make_step
from .peers import PATCH, stage_maps

REFERENCE = 'swin_dense'


def timm_comparable(h: int, w: int, num_stages: int, window: int) -> Tuple[bool, str]:
    """Whether timm computes the same function as swin_dense at this size (and why not).

    timm decides window and shift per axis from ``grid // 2**i`` (floor) and rolls the map *before*
    padding it, so it matches only where its windows and shifts equal ours and every shifted stage
    divides into whole windows.
    """
    if h % PATCH or w % PATCH:
        return False, f'timm needs H and W divisible by the patch size {PATCH}'
    gh, gw = h // PATCH, w // PATCH
    for i, (mh, mw) in enumerate(stage_maps(h, w, num_stages)):
        ours_win, ours_shift = effective_window(mh, mw, window)
        ours = (ours_win, ours_win, ours_shift)
        fh, fw = gh // 2 ** i, gw // 2 ** i
        twh, tww = (fh if fh <= window else window), (fw if fw <= window else window)
        tsh = 0 if fh <= twh else window // 2
        tsw = 0 if fw <= tww else window // 2
        if (twh, tww) != ours[:2] or {tsh, tsw} != {ours[2]}:
            return False, (f'stage {i} ({mh}x{mw}): timm picks window {twh}x{tww} shift {tsh}/{tsw}, '
                           f'swin_dense window {ours[0]} shift {ours[2]}')
        if ours[2] and (mh % ours_win or mw % ours_win):
            return False, (f'stage {i} ({mh}x{mw}) is not a multiple of window {ours_win}: timm rolls before '
                           'padding (timm #2438), so its shifted-window masks are wrong here')
    return True, ''


def stage_outputs(model: nn.Module, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """The stage outputs to compare: fp32, eval, no grad (leaves the model in eval mode)."""
    model.eval()
    with torch.no_grad():
        return tuple(o.float() for o in model(x))


def checked_grad(model: nn.Module, x: torch.Tensor, param: Callable[[], torch.Tensor]) -> torch.Tensor:
    """The gradient of ``param()`` after one fp32 train step (the step's gradients released after)."""
    check = make_step(model, x, 'train', 'fp32')
    check()
    grad = param().grad.detach().clone()
    check.release()
    return grad


def compare_rows(rows: Dict[str, Dict], outputs: Dict[str, Tuple[torch.Tensor, ...]],
                 grads: Dict[str, torch.Tensor], size: Tuple[int, int], num_stages: int, window: int) -> None:
    """Fill every row's ``max_abs_diff`` (per stage), ``grad_rel_diff`` and ``compare`` (what was done)."""
    h, w = size
    ref = outputs.get(REFERENCE)
    for name, row in rows.items():
        row['max_abs_diff'] = None
        row['grad_rel_diff'] = None
        if name == REFERENCE or name not in outputs or ref is None:
            continue
        if name == 'timm':
            ok, why = timm_comparable(h, w, num_stages, window)
            if not ok:
                row['compare'] = f'not compared: {why}'
                continue
        shapes = [tuple(o.shape) for o in outputs[name]], [tuple(o.shape) for o in ref]
        if shapes[0] != shapes[1]:
            row['compare'] = f'output shapes differ: {shapes[0]} vs {shapes[1]}'
            continue
        row['max_abs_diff'] = max_abs_diffs(outputs[name], ref)
        row['compare'] = 'compared'
        row['grad_rel_diff'] = grad_rel_diff(grads.get(name), grads.get(REFERENCE))


def max_abs_diffs(outputs: Tuple[torch.Tensor, ...], ref: Tuple[torch.Tensor, ...]) -> list:
    """Max abs difference of every stage output."""
    return [float((a - b).abs().max()) for a, b in zip(outputs, ref)]


def grad_rel_diff(grad: Optional[torch.Tensor], ref: Optional[torch.Tensor]) -> Optional[float]:
    """Max abs difference relative to the reference's max abs value; None without both gradients."""
    if grad is None or ref is None:
        return None
    return float((grad - ref).abs().max() / ref.abs().max().clamp_min(1e-30))
