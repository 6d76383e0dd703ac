"""ONNX export of the HTC++ + SwinV2 sample (random weights; mmdet's HTC without semantic branch, with
mask information flow and soft-NMS): the dynamic graph gives mmdet's detections and 28 x 28 mask
probabilities at sizes the trace never saw, the predictor on the graph gives the PyTorch predictor's
results, tools/infer.py writes the checkpoint's COCO results with the .onnx file, and HTC variants the
graph does not reproduce are refused with a message."""
import json
import os
import sys

import numpy as np
import pytest
import torch

pytest.importorskip('onnxruntime')
pytest.importorskip('mmdet')

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from deploy_helpers import (HTC_CONFIG, assert_other_test_cfg_refused, assert_predictors_agree,  # noqa: E402
                            assert_same_detections, normed_htc_checkpoint)
from inference_helpers import ROOT, coco_subset, py, run  # noqa: E402

# fewer proposals than the sample config, to keep the cascade heads fast; proposals that overlap more
# (RPN NMS at IoU 0.95) and room for every one of the 90 candidates (30 proposals x 3 classes), so that
# boxes whose score soft-NMS decayed (to below the others: random heads give every class about the
# same score) are among the detections (measured down to 0.055) and some fall below min_score
SMALL = {'model.test_cfg.rpn.max_per_img': 30, 'model.test_cfg.rpn.nms.iou_threshold': 0.95,
         'model.test_cfg.rcnn.max_per_img': 100}
# fp32 with another op order: the mask probabilities follow the features and boxes (measured max |diff|
# below 1e-5 in probability); 1e-4 leaves room for other CPU kernels
MASK_TOL = 1e-4


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return normed_htc_checkpoint(str(tmp_path_factory.mktemp('htc_onnx_ckpt')))


@pytest.fixture(scope='module')
def dynamic_export(checkpoint, tmp_path_factory):
    from swin_dense.deploy import export_onnx
    out = str(tmp_path_factory.mktemp('htc_dynamic'))
    return out, export_onnx(HTC_CONFIG, checkpoint, out, cfg_options=SMALL)


def _mmdet_mask_probs(model, x, instances):
    """mmdet's own HTC mask step on its own detections: (N, 28, 28) probabilities at each label."""
    from mmdet.structures.bbox import bbox2roi
    feats = model.extract_feat(x)
    preds = model.roi_head._mask_forward(stage=-1, x=feats, rois=bbox2roi([instances.bboxes]), training=False)
    (logits,) = preds['mask_preds']  # mmdet 3.3 keeps the last stage's logits only
    return logits.sigmoid()[torch.arange(len(instances)), instances.labels].numpy()


def test_dynamic_graph_matches_mmdet_at_sizes_it_never_saw(dynamic_export, checkpoint):
    import onnxruntime as ort
    from mmdet.structures import DetDataSample

    from swin_dense.inference.predictor import Predictor
    out, record = dynamic_export
    assert record.exporter['test_cfg']['rcnn']['nms'] == dict(type='soft_nms', iou_threshold=0.5, min_score=0.05)
    model = Predictor(HTC_CONFIG, checkpoint, cfg_options=SMALL).model
    session = ort.InferenceSession(os.path.join(out, 'model.onnx'), providers=['CPUExecutionProvider'])
    gen = torch.Generator().manual_seed(1)
    # (padded input, image inside it): neither is the trace's square size, 301 and 405 are no multiples of 32
    for size, img_shape in [((320, 352), (300, 340)), ((301, 405), (301, 405))]:
        assert record.size_policy.kind == 'dynamic' and record.size_policy.allows(*size)
        x = torch.randn(1, 3, *size, generator=gen)
        meta = dict(img_shape=img_shape, ori_shape=img_shape, pad_shape=size, batch_input_shape=size,
                    scale_factor=(1., 1.))
        with torch.no_grad():
            ref = model.predict(x, [DetDataSample(metainfo=meta)], rescale=False)[0].pred_instances
            ref_masks = _mmdet_mask_probs(model, x, ref)
            model.roi_head.test_cfg.nms = dict(type='nms', iou_threshold=0.5)
            hard = model.predict(x, [DetDataSample(metainfo=meta)], rescale=False)[0].pred_instances
            model.roi_head.test_cfg.nms = record.exporter['test_cfg']['rcnn']['nms']
        assert len(hard) < len(ref)  # soft-NMS kept boxes that hard NMS removes: decays shape the result
        boxes, scores, labels, masks = session.run(None, {'inputs': x.numpy(),
                                                          'img_shape': np.array(img_shape, np.float32)})
        assert masks.shape == (len(boxes), 28, 28) and labels.dtype == np.int64
        index = assert_same_detections((ref.bboxes.numpy(), ref.scores.numpy(), ref.labels.numpy()),
                                       (boxes, scores, labels))
        assert np.abs(masks[index] - ref_masks).max() < MASK_TOL


def test_onnx_predictor_gives_the_pytorch_predictors_results(dynamic_export, checkpoint, coco_sample):
    from swin_dense.inference.loading import load_predictor
    from swin_dense.inference.predictor import Predictor
    out, _ = dynamic_export
    torch_pred = Predictor(HTC_CONFIG, checkpoint, cfg_options=SMALL)
    onnx_pred = load_predictor(HTC_CONFIG, os.path.join(out, 'model.onnx'), cfg_options=SMALL)
    assert_predictors_agree(torch_pred, onnx_pred, os.path.join(coco_sample, 'val2017'))  # at the sample's 160 px


def test_a_config_asking_for_other_soft_nms_settings_is_refused(dynamic_export):
    out, _ = dynamic_export
    assert_other_test_cfg_refused(HTC_CONFIG, os.path.join(out, 'model.onnx'),
                                  {**SMALL, 'model.test_cfg.rcnn.nms.min_score': 0.1}, 'min_score', 0.05, 0.1)


@pytest.mark.e2e
def test_infer_writes_the_checkpoints_coco_results_with_the_onnx_file(dynamic_export, checkpoint, coco_sample,
                                                                     tmp_path):
    from pycocotools import mask as mask_utils
    out, _ = dynamic_export
    options = ['--cfg-options', *(f'{key}={value}' for key, value in SMALL.items())]
    images = os.path.join(coco_subset(coco_sample, str(tmp_path / 'data'), 2), 'val2017')
    for name, model in (('pth', checkpoint), ('onnx', os.path.join(out, 'model.onnx'))):
        run(py('infer.py', HTC_CONFIG, model, images, '--out', tmp_path / name, '--no-vis', '--no-progress', *options))
    ref, got = (json.load(open(tmp_path / name / 'results.json')) for name in ('pth', 'onnx'))
    assert len(got) == len(ref) > 0
    for e in ref:  # the detection of the same image and class whose box is closest
        m = min((r for r in got if (r['image_id'], r['category_id']) == (e['image_id'], e['category_id'])),
                key=lambda r: np.abs(np.subtract(r['bbox'], e['bbox'])).max())
        assert np.abs(np.subtract(m['bbox'], e['bbox'])).max() < 1e-3 and abs(m['score'] - e['score']) < 1e-3
        a, b = mask_utils.decode(e['segmentation']), mask_utils.decode(m['segmentation'])
        assert (a != b).sum() <= 0.01 * max(1, (a | b).sum())  # as above: flips only at the threshold


SEMANTIC = dict(  # mmdet's htc_r50_fpn_1x_coco.py semantic branch, at the sample's 64 channels
    semantic_roi_extractor=dict(type='SingleRoIExtractor', out_channels=64, featmap_strides=[8],
                                roi_layer=dict(type='RoIAlign', output_size=14, sampling_ratio=0)),
    semantic_head=dict(type='FusedSemanticHead', num_ins=5, fusion_level=1, seg_scale_factor=1 / 8, num_convs=1,
                       in_channels=64, conv_out_channels=64, num_classes=4,
                       loss_seg=dict(type='CrossEntropyLoss', ignore_index=255, loss_weight=0.2)))


@pytest.mark.parametrize('change, message', [
    (dict(roi_head=SEMANTIC), r"HTC's semantic branch \(semantic_head"),
    (dict(roi_head=dict(mask_info_flow=False)), 'HTC without mask_info_flow'),
    (dict(test_cfg=dict(rcnn=dict(nms=dict(method='naive')))), r"R-CNN NMS \{'type': 'soft_nms'"),
    (dict(test_cfg=dict(rpn=dict(nms=dict(type='soft_nms')))), r"RPN NMS \{'type': 'soft_nms'"),
])
def test_htc_variants_the_graph_does_not_reproduce_are_refused(change, message):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmdet.registry import MODELS

    from swin_dense.cli import setup_scope
    from swin_dense.deploy.detector import DetectorGraph, UnsupportedDetector
    cfg = Config.fromfile(HTC_CONFIG)
    cfg.merge_from_dict(dict(model=change))
    setup_scope(cfg)
    init_default_scope(cfg.default_scope)
    with pytest.raises(UnsupportedDetector, match=message + '.*: the ONNX detector graph reproduces'):
        DetectorGraph(MODELS.build(cfg.model))


@pytest.mark.parametrize('arch', ['b', 'l', 'g'])
def test_the_coco_htcpp_configs_are_accepted(arch):
    """The recipe's configs (built on the meta device: no memory for the weights) take the HTC mask step."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmdet.registry import MODELS

    from swin_dense.cli import setup_scope
    from swin_dense.deploy.detector import check_supported
    from swin_dense.deploy.htc import htc_mask_probs
    cfg = Config.fromfile(os.path.join(ROOT, 'configs', f'htcpp_swinv2_{arch}_coco.py'))
    cfg.model.backbone.init_cfg = None  # no pretrained file to read
    setup_scope(cfg)
    init_default_scope(cfg.default_scope)
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    assert check_supported(model) is htc_mask_probs
