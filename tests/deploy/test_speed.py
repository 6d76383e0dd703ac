"""tools/bench_onnx.py's measurement of a detector: both runtimes time the same image and give the same
boxes, and the table reports it."""
import os
import sys

import pytest

pytest.importorskip('onnxruntime')
pytest.importorskip('mmdet')

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from deploy_helpers import normed_checkpoint  # noqa: E402
from inference_helpers import DET_CONFIG  # noqa: E402

SMALL = {'model.test_cfg.rpn.max_per_img': 20, 'model.test_cfg.rcnn.max_per_img': 10}


def test_detector_speed_row(tmp_path):
    from swin_dense.deploy.speed import measure_detector, speed_table
    (row,) = measure_detector(DET_CONFIG, normed_checkpoint('det', str(tmp_path)), [(288, 320)], repeats=1,
                              cfg_options=SMALL)
    assert row.size == (288, 320) and row.graph == 'dynamic'  # both sides above the sample's 257 px
    assert 0 < row.eager_min <= row.eager_median and 0 < row.onnx_min <= row.onnx_median
    # the same detections in the same order: boxes agree within 5e-5 px (test_detector_export.py), inf if not
    assert row.max_abs_diff < 1e-3
    table = speed_table([row], 'max abs box diff (px)')
    assert '| 288 x 320 | dynamic |' in table and 'max abs box diff (px)' in table
