"""ONNX export of the Cascade Mask R-CNN + SwinV2 sample (random weights): the dynamic graph gives
mmdet's detections at sizes the trace never saw, the predictor on the graph gives the PyTorch
predictor's boxes, scores, labels and pasted masks, and detectors the graph does not reproduce are
refused with a message (HTC: test_htc_export.py)."""
import os
import sys

import numpy as np
import pytest
import torch

pytest.importorskip('onnxruntime')
pytest.importorskip('mmdet')

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from deploy_helpers import (assert_other_test_cfg_refused, assert_predictors_agree, assert_same_detections,  # noqa: E402
                            normed_checkpoint)
from inference_helpers import DET_CONFIG, ROOT  # noqa: E402

# fewer proposals than the sample config, to keep the cascade heads fast
SMALL = {'model.test_cfg.rpn.max_per_img': 50, 'model.test_cfg.rcnn.max_per_img': 20}


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return normed_checkpoint('det', str(tmp_path_factory.mktemp('det_onnx_ckpt')))


@pytest.fixture(scope='module')
def dynamic_export(checkpoint, tmp_path_factory):
    from swin_dense.deploy import export_onnx
    out = str(tmp_path_factory.mktemp('det_dynamic'))
    return out, export_onnx(DET_CONFIG, checkpoint, out, cfg_options=SMALL)


def test_roi_align_in_onnx_runtime_is_mmcvs(tmp_path):
    """mmcv's RoIAlign (aligned=True, adaptive sampling) = torchvision's roi_align exported as ONNX
    RoiAlign with half_pixel coordinates, at a map size and RoI count other than the trace's."""
    import onnxruntime as ort
    import torchvision
    from mmcv.ops import RoIAlign

    gen = torch.Generator().manual_seed(0)

    def rois(k):
        xy = torch.rand(k, 2, generator=gen) * 160
        return torch.cat([torch.zeros(k, 1), xy, xy + torch.rand(k, 2, generator=gen) * 60 + 0.5], dim=1)

    class Pool(torch.nn.Module):
        def forward(self, feat, boxes):
            return torchvision.ops.roi_align(feat, boxes, (7, 7), 0.25, 0, True)

    path = str(tmp_path / 'roi_align.onnx')
    torch.onnx.export(Pool(), (torch.randn(1, 8, 30, 30), rois(5)), path, dynamo=False, opset_version=17,
                      input_names=['feat', 'rois'], dynamic_axes={'feat': {2: 'h', 3: 'w'}, 'rois': {0: 'k'}})
    feat, boxes = torch.randn(1, 8, 37, 45, generator=gen), rois(50)
    got = ort.InferenceSession(path).run(None, {'feat': feat.numpy(), 'rois': boxes.numpy()})[0]
    ref = RoIAlign((7, 7), 0.25, 0, aligned=True)(feat, boxes).numpy()
    # the same bilinear samples summed in the same order: measured bit-equal; 1e-6 allows another summation order
    assert got.shape == ref.shape == (50, 8, 7, 7) and np.abs(got - ref).max() < 1e-6


def test_dynamic_graph_matches_mmdet_at_sizes_it_never_saw(dynamic_export, checkpoint):
    import onnxruntime as ort
    from mmdet.structures import DetDataSample

    from swin_dense.inference.predictor import Predictor
    out, record = dynamic_export
    assert record.task == 'detection' and record.output_names == ['boxes', 'scores', 'labels', 'masks']
    assert record.size_policy.kind == 'dynamic'
    model = Predictor(DET_CONFIG, checkpoint, cfg_options=SMALL).model
    session = ort.InferenceSession(os.path.join(out, 'model.onnx'), providers=['CPUExecutionProvider'])
    gen = torch.Generator().manual_seed(1)
    # (padded input, image inside it): the trace was 257 x 257; 301 and 405 are no multiples of 32 or 8
    for size, img_shape in [((320, 352), (300, 340)), ((301, 405), (301, 405))]:
        assert record.size_policy.allows(*size)
        x = torch.randn(1, 3, *size, generator=gen)
        meta = dict(img_shape=img_shape, ori_shape=img_shape, pad_shape=size, batch_input_shape=size,
                    scale_factor=(1., 1.))
        with torch.no_grad():
            ref = model.predict(x, [DetDataSample(metainfo=meta)], rescale=False)[0].pred_instances
        boxes, scores, labels, masks = session.run(None, {'inputs': x.numpy(),
                                                          'img_shape': np.array(img_shape, np.float32)})
        assert masks.shape == (len(boxes), 28, 28) and labels.dtype == np.int64
        assert_same_detections((ref.bboxes.numpy(), ref.scores.numpy(), ref.labels.numpy()),
                                (boxes, scores, labels))


def test_onnx_predictor_gives_the_pytorch_predictors_results(dynamic_export, checkpoint, coco_sample):
    from swin_dense.inference.loading import load_predictor
    from swin_dense.inference.predictor import Predictor
    out, _ = dynamic_export
    torch_pred = Predictor(DET_CONFIG, checkpoint, cfg_options=SMALL)
    onnx_pred = load_predictor(DET_CONFIG, os.path.join(out, 'model.onnx'), cfg_options=SMALL)
    assert type(onnx_pred).__name__ == 'OnnxPredictor' and onnx_pred.describe()['runtime'] == 'onnxruntime'
    assert onnx_pred.classes == torch_pred.classes
    datas = assert_predictors_agree(torch_pred, onnx_pred, os.path.join(coco_sample, 'val2017'))
    assert max(datas[0]['inputs'].shape[1:]) == 160  # the sample pipeline: windows of stages 2 and 3 shrink


def test_no_detection_gives_the_empty_results_of_mmdet(checkpoint, coco_sample, tmp_path):
    from swin_dense.deploy import export_onnx
    from swin_dense.inference.loading import load_predictor
    from swin_dense.inference.predictor import Predictor
    nothing = {**SMALL, 'model.test_cfg.rcnn.score_thr': 1.0}  # softmax scores never exceed 1
    export_onnx(DET_CONFIG, checkpoint, str(tmp_path), cfg_options=nothing)
    onnx_pred = load_predictor(DET_CONFIG, str(tmp_path / 'model.onnx'), cfg_options=nothing)
    folder = os.path.join(coco_sample, 'val2017')
    data = onnx_pred.prepare(onnx_pred.read(os.path.join(folder, sorted(os.listdir(folder))[0])))
    (ref,) = Predictor(DET_CONFIG, checkpoint, cfg_options=nothing).predict([data])
    (got,) = onnx_pred.predict([data])
    for key in ('bboxes', 'scores', 'labels', 'masks'):
        assert getattr(got.pred_instances, key).shape == getattr(ref.pred_instances, key).shape
    assert len(got.pred_instances) == 0 and got.pred_instances.masks.shape[1:] == data['data_samples'].ori_shape


def test_a_config_asking_for_other_test_settings_is_refused(dynamic_export):
    out, _ = dynamic_export
    assert_other_test_cfg_refused(DET_CONFIG, os.path.join(out, 'model.onnx'),
                                  {**SMALL, 'model.test_cfg.rcnn.score_thr': 0.3}, 'score_thr', 0.05, 0.3)


def test_detectors_the_graph_does_not_reproduce_are_refused():
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmdet.registry import MODELS

    from swin_dense.cli import setup_scope
    from swin_dense.deploy.detector import DetectorGraph, UnsupportedDetector
    cfg = Config.fromfile(DET_CONFIG)
    cfg.model.roi_head.mask_head.type = 'HTCMaskHead'  # an HTC mask head in a Cascade RoI head
    setup_scope(cfg)
    init_default_scope(cfg.default_scope)
    with pytest.raises(UnsupportedDetector, match='mask head HTCMaskHead: the ONNX detector graph reproduces'):
        DetectorGraph(MODELS.build(cfg.model))
