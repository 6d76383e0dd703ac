"""Input sizes of a dynamic export: the smallest side it covers, and the size it is traced at.

The ONNX exporter traces the model once (``torch.jit.trace``): the amounts of every padding
(patch embedding, window padding, odd-size patch merging) are recorded as computations on the
input's shape, but a Python ``if`` on a size keeps the branch the trace took. Two rules make one
trace valid at every size it allows:

* **window regime.** A stage whose map is not larger than its window runs one shrunken window
  without shift (``effective_window``), another graph. A dynamic export covers the sizes at which
  every stage's map is larger than its window: sides of at least :func:`min_side` px.
* **trace size.** The trace is taken at a size where every padding branch is taken (every stage's
  map is odd and not a window multiple, the image not a patch multiple), so the graph pads by a
  computed amount, zero where nothing needs padding: :func:`trace_side`.
"""
from typing import Sequence


def stage_sides(side: int, patch_size: int, num_stages: int) -> list:
    """Map sides of the stages for an image side: ``ceil(side / patch)``, then halved (ceil) per stage."""
    sides = [-(-side // patch_size)]
    for _ in range(num_stages - 1):
        sides.append(-(-sides[-1] // 2))
    return sides


def min_side(windows: Sequence[int], patch_size: int) -> int:
    """The smallest image side at which every stage's map is larger than its window."""
    return max(w * patch_size * 2 ** i + 1 for i, w in enumerate(windows))


def trace_side(windows: Sequence[int], patch_size: int, at_least: int) -> int:
    """The smallest side >= ``at_least`` at which every padding branch is taken (module docstring)."""
    side = at_least
    while True:
        maps = stage_sides(side, patch_size, len(windows))
        if (side % patch_size and all(m % w for m, w in zip(maps, windows))
                and all(m % 2 for m in maps[:-1])):
            return side
        side += 1
