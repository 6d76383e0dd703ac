"""tools/bench_onnx.py end to end: without a checkpoint it times the config's randomly initialised model
in the three runtimes and prints both tables."""
import os
import sys

import pytest

pytest.importorskip('onnxruntime')

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'inference'))
from inference_helpers import SEG_CONFIG, py, run  # noqa: E402


@pytest.mark.e2e
def test_bench_onnx_times_random_weights_and_profiles():
    proc = run(py('bench_onnx.py', SEG_CONFIG, '--sizes', '64x96', '--repeats', '1', '--profile'))
    lines = proc.stdout.splitlines()
    assert any(line.startswith('1 thread(s), 1 timed runs per size') for line in lines)
    speed = next(line for line in lines if line.startswith('| 64 x 96 |') and line.count('x |') == 2)
    # eager, inference mode and ONNX Runtime timed, and both faster runtimes within 1e-4 of eager's logits
    diffs = [float(v) for v in speed.rstrip(' |').split('|')[-1].split('/')]
    assert len(diffs) == 2 and max(diffs) < 1e-4
    assert any(line.startswith('| 64 x 96 |') and line.endswith('x |') and ' % |' in line for line in lines)
    # inference mode's Winograd layers on their inputs: the 1/4-scale map (16 x 24) is below MIN_PIXELS,
    # and the layer's 64 output channels are fewer than F(4x4, 3x3) takes
    assert any(line.startswith('| 64 x 96 | `decode_head.fpn_bottleneck.conv` | (1, 256, 16, 24) | direct | ')
               for line in lines)
