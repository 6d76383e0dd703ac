"""tools/bench_winograd.py end to end, in its --quick mode: both tables, one row per case and step
shape, and each row's algorithm the one inference mode picks for that input."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'inference'))
from inference_helpers import py, run  # noqa: E402


def test_bench_winograd_quick_prints_both_tables():
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    from tools.bench_winograd import CASES, STEP_SHAPES, STEPS

    proc = run(py('bench_winograd.py', '--quick', '--repeats', '1'))
    lines = proc.stdout.splitlines()
    rows = [line for line in lines if line.startswith('| ') and (' channels` |' in line or 'channels-last` |' in line)]
    assert len(rows) == len(CASES)
    # --quick divides channels by 16: below MIN_CHANNELS nothing small goes through F(4x4, 3x3)
    assert all(' | F(4x4, 3x3) | ' not in row for row in rows)
    assert '| 28 x 28 | `16 -> 16 channels` | (1, 16, 28, 28) | ' in '\n'.join(rows)
    steps = [line for line in lines if line.startswith('| (')]
    assert len(steps) == len(STEP_SHAPES) and all(len(line.split('|')) == len(STEPS) + 3 for line in steps)
