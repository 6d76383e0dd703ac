"""Soft-NMS re-expressed with traceable ops (swin_dense/deploy/box_ops.py) against mmdet's
``multiclass_nms`` with mmcv's ``soft_nms`` kernel: the same boxes, decayed scores, labels and order, in
PyTorch and in ONNX Runtime at candidate counts the trace never saw, zero included."""
import numpy as np
import pytest
import torch

pytest.importorskip('mmcv')

SOFT = dict(type='soft_nms', iou_threshold=0.5, min_score=0.05)  # the HTC++ configs' test_cfg.rcnn.nms
SCORE_THR = 0.001  # and their score_thr (mmdet's htc-without-semantic_r50_fpn_1x_coco.py)


def _detections(num_boxes: int, num_classes: int, seed: int, sharpness: float = 1.0):
    """Boxes (N, C, 4) of 1-61 px with corners in a 40 x 40 px square (many overlap), softmax scores (N, C + 1)
    drawn from a continuous distribution (no ties)."""
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(num_boxes, num_classes, 2, generator=gen) * 40
    boxes = torch.cat([xy, xy + torch.rand(num_boxes, num_classes, 2, generator=gen) * 60 + 1], dim=-1)
    scores = torch.softmax(torch.randn(num_boxes, num_classes + 1, generator=gen) * sharpness, dim=-1)
    return boxes, scores


def _mmdet(boxes, scores, score_thr, nms_cfg, max_per_img):
    from mmdet.models.layers import multiclass_nms
    dets, labels = multiclass_nms(boxes.reshape(boxes.shape[0], -1), scores, score_thr, nms_cfg, max_per_img)
    return dets[:, :4], dets[:, 4], labels


def _ours(boxes, scores, score_thr, nms_cfg, max_per_img):
    from swin_dense.deploy.box_ops import multiclass_nms
    return multiclass_nms(boxes, scores, score_thr, nms_cfg, max_per_img)


def _assert_equal(got, ref):
    """The same float32 operations in the same order as mmcv's kernel: bit-equal (measured), so no tolerance."""
    for a, b in zip(got, ref):
        assert a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b), (a, b)


@pytest.mark.parametrize('seed', range(4))
def test_soft_nms_is_mmcvs_on_overlapping_boxes_of_several_classes(seed):
    boxes, scores = _detections(60, 3, seed)
    ref = _mmdet(boxes, scores, SCORE_THR, SOFT, 100)
    _assert_equal(_ours(boxes, scores, SCORE_THR, SOFT, 100), ref)
    # what makes this a soft-NMS case: some kept scores were decayed (they are no candidate's score), and
    # mmcv drops candidates whose decayed score fell below min_score even with no limit on the count
    raw = scores[:, :-1][scores[:, :-1] > SCORE_THR]
    assert len(ref[1]) == 100 and not torch.isin(ref[1], raw).all()
    assert len(_mmdet(boxes, scores, SCORE_THR, SOFT, 10 ** 6)[1]) < len(raw)


def test_fewer_candidates_than_picks():
    boxes, scores = _detections(4, 3, 10)  # 12 candidates, 20 picks
    ref = _mmdet(boxes, scores, SCORE_THR, SOFT, 20)
    assert 0 < len(ref[0]) < 12
    _assert_equal(_ours(boxes, scores, SCORE_THR, SOFT, 20), ref)


def test_no_candidate():
    boxes, scores = _detections(30, 3, 11)
    got = _ours(boxes, scores, 0.99, SOFT, 20)  # no softmax score of 4 classes reaches 0.99 here
    assert [t.shape for t in got] == [(0, 4), (0,), (0,)]
    _assert_equal(got, _mmdet(boxes, scores, 0.99, SOFT, 20))


def test_the_first_pick_is_kept_below_min_score_as_by_mmcv():
    """mmcv's kernel never checks its first pick against min_score; with score_thr below min_score and
    every candidate below it, mmcv keeps that one box."""
    boxes, scores = _detections(5, 3, 12)
    cfg = dict(SOFT, min_score=0.9)
    ref = _mmdet(boxes, scores, 0.0, cfg, 20)
    assert len(ref[1]) == 1 and ref[1][0] < 0.9
    _assert_equal(_ours(boxes, scores, 0.0, cfg, 20), ref)


def test_from_split_thr_candidates_on_each_classes_first_pick_is_kept():
    """From 10000 candidates on mmcv's batched_nms runs soft-NMS once per class: each class's highest
    candidate is kept below min_score, and the kept boxes are sorted by score."""
    boxes, scores = _detections(2600, 4, 13, sharpness=2.0)  # 10400 candidates
    scores[:, 2:4] *= 0.3  # classes 2 and 3 score below min_score: only their first picks are kept
    cfg = dict(SOFT, min_score=0.9)
    ref = _mmdet(boxes, scores, 0.0, cfg, 100)
    assert ref[2][ref[1] < 0.9].tolist() in ([2, 3], [3, 2]) and (ref[1] >= 0.9).sum() > 2
    _assert_equal(_ours(boxes, scores, 0.0, cfg, 100), ref)


def test_an_iou_equal_to_the_threshold_decays():
    """mmcv's linear rule decays where IoU >= iou_threshold (hard NMS suppresses where IoU > it)."""
    boxes = torch.tensor([[[0., 0., 20., 10.]], [[0., 0., 10., 10.]]])  # IoU exactly 0.5
    scores = torch.tensor([[0.9, 0.1], [0.8, 0.2]])
    ref = _mmdet(boxes, scores, SCORE_THR, SOFT, 20)
    assert ref[1].tolist() == [0.8999999761581421, 0.4000000059604645]  # 0.8 x (1 - 0.5) in float32
    _assert_equal(_ours(boxes, scores, SCORE_THR, SOFT, 20), ref)


def test_gaussian_decay():
    boxes, scores = _detections(60, 3, 14)
    cfg = dict(type='soft_nms', iou_threshold=0.3, min_score=0.05, method='gaussian', sigma=0.5)
    ref = _mmdet(boxes, scores, SCORE_THR, cfg, 20)
    got = _ours(boxes, scores, SCORE_THR, cfg, 20)
    assert torch.equal(got[0], ref[0]) and torch.equal(got[2], ref[2])
    # std::exp and torch.exp of float32 may differ by one ulp (measured 6e-8 on scores below 1)
    assert (got[1] - ref[1]).abs().max() < 1e-6


def test_soft_nms_in_onnx_runtime_at_other_counts(tmp_path):
    import onnxruntime as ort

    from swin_dense.deploy.box_ops import multiclass_nms

    class SoftNMS(torch.nn.Module):
        def forward(self, boxes, scores):
            return multiclass_nms(boxes, scores, SCORE_THR, SOFT, 20)

    path = str(tmp_path / 'soft_nms.onnx')
    torch.onnx.export(SoftNMS(), _detections(40, 3, 20), path, dynamo=False, opset_version=17,
                      input_names=['boxes', 'scores'], output_names=['b', 's', 'l'],
                      dynamic_axes={name: {0: 'n'} for name in ('boxes', 'scores', 'b', 's', 'l')})
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    boxes, scores = _detections(70, 3, 21)
    got = session.run(None, {'boxes': boxes.numpy(), 'scores': scores.numpy()})
    # ONNX Runtime's float32 kernels for the same element-wise ops: measured bit-equal
    _assert_equal([torch.from_numpy(a) for a in got], _mmdet(boxes, scores, SCORE_THR, SOFT, 20))
    empty = session.run(None, {'boxes': np.zeros((0, 3, 4), np.float32), 'scores': np.zeros((0, 4), np.float32)})
    assert [a.shape for a in empty] == [(0, 4), (0,), (0,)]  # mmdet returns early there (no RoI)
