"""Input sizes of a dynamic export: the size it is traced at.

The ONNX exporter traces the model once (``torch.jit.trace``): the amounts of every padding
(patch embedding, window padding, odd-size patch merging) are recorded as computations on the
input's shape, and the window shrink rule (a map not larger than its window is one window without
shift, ``swin_block.effective_window``) as tensor ops, so one graph serves maps on both sides of the
window. A Python ``if`` on a size still keeps the branch the trace took, so the trace is taken at a
size where every padding branch is taken: every stage's map larger than its window, odd and not a
window multiple, the image not a patch multiple (:func:`trace_side`). The graph then pads by a
computed amount, zero where nothing needs padding, and runs at any size of at least one patch.
"""
from typing import Sequence


def stage_sides(side: int, patch_size: int, num_stages: int) -> list:
    """Map sides of the stages for an image side: ``ceil(side / patch)``, then halved (ceil) per stage."""
    sides = [-(-side // patch_size)]
    for _ in range(num_stages - 1):
        sides.append(-(-sides[-1] // 2))
    return sides


def full_window_side(windows: Sequence[int], patch_size: int) -> int:
    """The smallest image side at which every stage's map is larger than its window."""
    return max(w * patch_size * 2 ** i + 1 for i, w in enumerate(windows))


def trace_side(windows: Sequence[int], patch_size: int) -> int:
    """The smallest side at which every stage's map is larger than its window and every padding
    branch is taken (module docstring)."""
    side = full_window_side(windows, patch_size)
    while True:
        maps = stage_sides(side, patch_size, len(windows))
        if (side % patch_size and all(m % w for m, w in zip(maps, windows))
                and all(m % 2 for m in maps[:-1])):
            return side
        side += 1
