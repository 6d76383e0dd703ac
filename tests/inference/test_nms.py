"""mmcv's NMS through torchvision (swin_dense/inference/nms.py): the same kept boxes as mmcv.ops.nms,
ties included, mmcv itself for what torchvision does not compute, and the detector's test configs
pointed at it without touching the config the model was built from."""
import os
import sys

import pytest
import torch

from swin_dense.inference import nms as nms_module
from swin_dense.inference.nms import nms, use_torchvision_nms

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from inference_helpers import DET_CONFIG, random_checkpoint  # noqa: E402


def _boxes(n: int, seed: int, levels: int = 0):
    """n random boxes; with ``levels`` the scores take that many values, so that many are equal."""
    gen = torch.Generator().manual_seed(seed)
    xy, wh = torch.rand(n, 2, generator=gen) * 500, torch.rand(n, 2, generator=gen) * 200 + 1
    scores = torch.rand(n, generator=gen)
    return torch.cat([xy, xy + wh], 1), (scores * levels).round() / levels if levels else scores


@pytest.mark.parametrize('n,levels', [(0, 0), (1, 0), (1000, 0), (700, 5), (1500, 3)])
def test_nms_keeps_what_mmcv_keeps(n, levels):
    from mmcv.ops import nms as mmcv_nms
    for seed in range(5):
        boxes, scores = _boxes(n, seed, levels)
        (dets, keep), (ref_dets, ref_keep) = nms(boxes, scores, 0.5), mmcv_nms(boxes, scores, 0.5)
        assert torch.equal(keep, ref_keep) and torch.equal(dets, ref_dets)


@pytest.mark.parametrize('options', [dict(offset=1), dict(score_threshold=0.3), dict(max_num=10)])
def test_what_torchvision_does_not_compute_goes_to_mmcv(options, monkeypatch):
    import torchvision
    from mmcv.ops import nms as mmcv_nms
    monkeypatch.setattr(torchvision.ops, 'nms', lambda *args: pytest.fail('torchvision was called'))
    boxes, scores = _boxes(300, 0)
    (dets, keep), (ref_dets, ref_keep) = nms(boxes, scores, 0.5, **options), mmcv_nms(boxes, scores, 0.5, **options)
    assert torch.equal(keep, ref_keep) and torch.equal(dets, ref_dets)


def test_the_detectors_nms_configs_point_at_it(tmp_path):
    from swin_dense.inference.predictor import Predictor
    built = Predictor(DET_CONFIG, random_checkpoint('det', str(tmp_path)), inference_mode=False)
    model = built.model
    before = built.cfg.model.test_cfg.to_dict()
    assert use_torchvision_nms(model) == 2  # the RPN's and the R-CNN stages' (one config, shared)
    assert model.rpn_head.test_cfg.nms.type is nms_module.nms and model.roi_head.test_cfg.nms.type is nms_module.nms
    assert model.rpn_head.test_cfg.nms.iou_threshold == before['rpn']['nms']['iou_threshold']
    assert built.cfg.model.test_cfg.to_dict() == before  # the config itself is untouched
    assert use_torchvision_nms(model) == 0  # done once


def test_soft_nms_and_other_types_are_left_alone():
    module = torch.nn.Module()
    module.test_cfg = dict(nms=dict(type='soft_nms', iou_threshold=0.5))
    assert use_torchvision_nms(module) == 0 and module.test_cfg['nms']['type'] == 'soft_nms'
