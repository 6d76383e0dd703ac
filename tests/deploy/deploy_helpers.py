"""Shared by tests/deploy: random sample checkpoints whose attention reaches the output."""
import os
import sys
from typing import Dict

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'inference'))
from inference_helpers import ROOT, random_checkpoint  # noqa: E402

HTC_CONFIG = os.path.join(ROOT, 'configs', 'sample', 'htcpp_swinv2_t_sample.py')


def _redraw_backbone_norms(state_dict: Dict[str, torch.Tensor]) -> None:
    """Backbone LayerNorm weights drawn around 1 (seed 0): at initialisation the res-post-norms are zero,
    and the attention (masks, position bias) would then not reach the output at all."""
    gen = torch.Generator().manual_seed(0)
    for key, value in state_dict.items():
        if key.startswith('backbone.') and 'norm' in key and key.endswith('weight'):
            state_dict[key] = 1 + 0.5 * torch.randn(value.shape, generator=gen)


def normed_checkpoint(task: str, folder: str) -> str:
    """The random sample checkpoint of ``task`` ('det' or 'seg') with its backbone's LayerNorm weights
    drawn around 1 (:func:`_redraw_backbone_norms`)."""
    ckpt = torch.load(random_checkpoint(task, folder), weights_only=False)
    _redraw_backbone_norms(ckpt['state_dict'])
    path = os.path.join(folder, f'{task}_normed.pth')
    torch.save(ckpt, path)
    return path


def normed_htc_checkpoint(folder: str) -> str:
    """A randomly initialised (seed 0) checkpoint of the HTC++ sample config, with dataset_meta, and its
    backbone's LayerNorm weights drawn around 1 (:func:`_redraw_backbone_norms`)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmdet.registry import MODELS

    from swin_dense.cli import setup_scope
    cfg = Config.fromfile(HTC_CONFIG)
    setup_scope(cfg)
    init_default_scope(cfg.default_scope)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        model.init_weights()
    state_dict = model.state_dict()
    _redraw_backbone_norms(state_dict)
    meta = dict(dataset_meta=dict(classes=list(cfg.metainfo['classes']),
                                  palette=[list(p) for p in cfg.metainfo['palette']]))
    path = os.path.join(folder, 'htc_normed.pth')
    torch.save({'state_dict': state_dict, 'meta': meta}, path)
    return path


# fp32 with another op order (eager attention, ONNX Runtime kernels): measured max |diff| 4.6e-5 px on
# boxes of ~300 px and 3.6e-7 on scores (Cascade); 1e-3 is the bound for detection boxes and scores
BOX_TOL = SCORE_TOL = 1e-3


def match_detections(ref_boxes, ref_labels, boxes, labels):
    """For each reference detection, the index of the detection of the same label that overlaps it most."""
    from torchvision.ops import box_iou
    iou = box_iou(torch.as_tensor(ref_boxes), torch.as_tensor(boxes))
    iou[torch.as_tensor(ref_labels)[:, None] != torch.as_tensor(labels)[None, :]] = -1
    best, index = iou.max(dim=1)
    assert (best > 0.99).all(), best  # every detection has its counterpart
    return index.numpy()


def assert_same_detections(ref, got):
    """ref / got: (boxes, scores, labels) as arrays; returns the index of each reference detection in got."""
    assert len(got[0]) == len(ref[0]) > 0
    index = match_detections(ref[0], ref[2], got[0], got[2])
    assert sorted(index) == list(range(len(ref[0])))
    assert np.abs(got[0][index] - ref[0]).max() < BOX_TOL
    assert np.abs(got[1][index] - ref[1]).max() < SCORE_TOL
    return index


def assert_predictors_agree(torch_pred, onnx_pred, folder: str, count: int = 2) -> list:
    """Both predictors on the first ``count`` images of ``folder``: the same detections
    (:func:`assert_same_detections`) and pasted masks that differ in under 1% of the pixels either mask
    covers (a pixel flips only where the pasted probability is within ~1e-5 of mask_thr_binary; counted
    over the masks, not the whole, mostly empty image). Returns the prepared inputs."""
    images = [onnx_pred.read(os.path.join(folder, n)) for n in sorted(os.listdir(folder))[:count]]
    datas = [onnx_pred.prepare(img) for img in images]
    for img, a, b in zip(images, torch_pred.predict(datas), onnx_pred.predict(datas)):
        a, b = a.pred_instances, b.pred_instances
        index = assert_same_detections((a.bboxes.numpy(), a.scores.numpy(), a.labels.numpy()),
                                       (b.bboxes.numpy(), b.scores.numpy(), b.labels.numpy()))
        masks_a, masks_b = a.masks.numpy(), b.masks.numpy()[index]
        assert masks_b.shape == masks_a.shape == (len(index), *img.shape[:2])
        flipped = (masks_a != masks_b).sum() / (masks_a | masks_b).sum()
        assert masks_a.any() and flipped < 0.01
    return datas


def assert_other_test_cfg_refused(config: str, onnx_path: str, cfg_options: Dict, key: str, exported: float,
                                  asked: float) -> None:
    """Loading ``onnx_path`` for ``config`` with ``cfg_options`` that ask for ``key`` = ``asked`` in the
    RCNN test_cfg (the graph was exported with ``exported``) fails, naming both values and the fix."""
    import pytest

    from swin_dense.inference.loading import load_predictor
    from swin_dense.inference.predictor import PredictorError
    with pytest.raises(PredictorError, match=rf"was exported with model.test_cfg=.*'{key}': {exported}.*"
                                             rf"gives .*'{key}': {asked}.*pass the --cfg-options of the export"):
        load_predictor(config, onnx_path, cfg_options=cfg_options)
