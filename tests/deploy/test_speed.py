"""tools/bench_onnx.py's measurement: the three runtimes time the same input and give the same outputs,
and the table reports it."""
import os
import sys

import pytest

pytest.importorskip('onnxruntime')
pytest.importorskip('mmdet')

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from deploy_helpers import normed_checkpoint  # noqa: E402
from inference_helpers import DET_CONFIG, SEG_CONFIG  # noqa: E402

SMALL = {'model.test_cfg.rpn.max_per_img': 20, 'model.test_cfg.rcnn.max_per_img': 10}


def _check(row, size):
    assert row.size == size
    for runtime in ('eager', 'inference_mode', 'onnxruntime'):
        fastest, median = row.seconds[runtime]
        assert 0 < fastest <= median
    assert row.speedup('onnxruntime') == row.seconds['eager'][1] / row.seconds['onnxruntime'][1]


def test_detector_speed_row(tmp_path):
    from swin_dense.deploy.speed import measure_detector, speed_table
    (row,) = measure_detector(DET_CONFIG, normed_checkpoint('det', str(tmp_path)), [(160, 192)], repeats=1,
                              cfg_options=SMALL)
    _check(row, (160, 192))
    # the same detections in the same order: boxes agree within 5e-5 px (test_detector_export.py), inf if not
    assert row.max_abs_diff['inference_mode'] < 1e-3 and row.max_abs_diff['onnxruntime'] < 1e-3
    table = speed_table([row], 'box (px)')
    assert table.splitlines()[2].startswith('| 160 x 192 | ') and 'max abs box (px) diff' in table


def test_segmentor_speed_row(tmp_path):
    from swin_dense.deploy.speed import bound_table, measure_segmentor, speed_table
    (row,) = measure_segmentor(SEG_CONFIG, normed_checkpoint('seg', str(tmp_path)), [(112, 130)], repeats=1,
                               profile=True)
    _check(row, (112, 130))
    bound = row.bound  # UPerNet's head and the patch embedding are convolutions; the attention is not
    assert 0 < bound.conv_share < 1 and bound.conv_gflops > 0 and bound.matmul_gflops > 0
    assert '| 112 x 130 |' in bound_table([bound])
    # logits within 4e-6 (test_segmentor_export.py); 1e-4 is the bound
    assert row.max_abs_diff['inference_mode'] < 1e-4 and row.max_abs_diff['onnxruntime'] < 1e-4
    assert '| 112 x 130 |' in speed_table([row], 'logit')
    _check_winograd_layers(row.winograd)


def _check_winograd_layers(winograd):
    from swin_dense.deploy.speed import winograd_table
    from swin_dense.inference.winograd import ALGORITHMS, nnpack_available
    layers = {layer.name: layer for layer in winograd}
    # the layers that ran (the auxiliary head is built but not run at test time), on their own inputs
    assert sorted(layers) == sorted(['decode_head.bottleneck.conv', 'decode_head.fpn_bottleneck.conv']
                                    + [f'decode_head.fpn_convs.{i}.conv' for i in range(3)])
    measured = [a for a in ALGORITHMS if a != 'nnpack' or nnpack_available()]
    for layer in winograd:
        assert list(layer.ms) == list(layer.error) == measured
        assert all(ms > 0 for ms in layer.ms.values())
        # against float64, relative to the largest output: direct ~1e-7, the Winograd algorithms ~1e-6 here
        assert 0 < layer.error['direct'] < 1e-5 and all(0 < e < 5e-5 for e in layer.error.values())
    # the 1/4-scale map (28 x 33) goes through NNPACK; the smaller ones directly, having 64 channels,
    # fewer than F(4x4, 3x3) takes
    assert layers['decode_head.fpn_bottleneck.conv'].shape == (1, 256, 28, 33)
    assert layers['decode_head.fpn_bottleneck.conv'].algorithm == ('nnpack' if nnpack_available() else 'direct')
    assert layers['decode_head.fpn_convs.1.conv'].algorithm == 'direct'
    assert layers['decode_head.bottleneck.conv'].algorithm == 'direct'
    table = winograd_table(winograd)
    assert '| 112 x 130 | `decode_head.fpn_convs.1.conv` | (1, 64, 14, 17) | direct | ' in table
    assert len(table.splitlines()) == 2 + len(winograd)


def test_best_speedup_leaves_only_the_convolutions_at_the_matmul_rate():
    from swin_dense.deploy.speed import ConvBound
    # 80 % of 10 s in convolutions at 90 of 100 GFLOP/s: 7.2 s at best, 1.39x
    assert ConvBound((8, 8), 10.0, 0.8, 90.0, 100.0).best_speedup == pytest.approx(10 / 7.2)
    # convolutions faster than the matrix product: their own time is the bound
    assert ConvBound((8, 8), 10.0, 0.5, 150.0, 100.0).best_speedup == pytest.approx(2.0)
