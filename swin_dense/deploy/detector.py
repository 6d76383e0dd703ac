"""A Cascade Mask R-CNN or an HTC (without semantic branch) as a tensor-in, tensor-out function for the
ONNX exporter: :class:`DetectorGraph`.

It re-expresses mmdet's ``TwoStageDetector.predict`` (RPN, ``CascadeRoIHead.predict``) with the
traceable operations of :mod:`.box_ops`, running the built model's own modules (backbone, neck, RPN
head, box heads, mask heads). HTC's test-time box path is Cascade's (``HybridTaskCascadeRoIHead``
without ``semantic_head`` runs ``CascadeRoIHead.predict_bbox``); the two differ in the R-CNN NMS, hard
or soft (:func:`.box_ops.multiclass_nms` follows ``test_cfg.rcnn.nms``), and in the mask step, which
:func:`check_supported` picks (:func:`cascade_mask_probs`, :func:`.htc.htc_mask_probs`). The graph stops
before pasting masks into the image: it returns each kept box's mask probabilities on the 28 x 28 RoI
grid, for the box's class; the runtime pastes them with mmdet's own mask head
(``swin_dense/inference/onnx_predictor.py``).
"""
from typing import Callable, List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .box_ops import batched_nms, delta2bbox, grid_anchors, multiclass_nms, roi_features, topk_count
from .htc import htc_mask_probs

DET_INPUTS = ['inputs', 'img_shape']
DET_OUTPUTS = ['boxes', 'scores', 'labels', 'masks']
# the keys of a soft-NMS config the graph reproduces (mmcv.ops.soft_nms's arguments, batched_nms's split_thr)
SOFT_NMS_KEYS = {'type', 'iou_threshold', 'min_score', 'sigma', 'method', 'offset', 'split_thr'}

MaskStep = Callable[[nn.Module, List[Tensor], Tensor], Tensor]


class UnsupportedDetector(ValueError):
    """The detector has a part the graph does not reproduce; the message names it."""


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise UnsupportedDetector(f'{what}: the ONNX detector graph reproduces Cascade Mask R-CNN and HTC without '
                                  'semantic branch, with RPNHead (sigmoid), DeltaXYWH boxes, aligned RoIAlign, '
                                  'plain NMS (soft-NMS, linear or gaussian, in the R-CNN stage) and FCN / HTC mask '
                                  'heads only (docs/deploy.md)')


def cascade_mask_probs(roi_head: nn.Module, feats: List[Tensor], rois: Tensor) -> Tensor:
    """``CascadeRoIHead.predict_mask`` up to pasting: rois (N, 5) -> the mean over stages of the mask
    heads' sigmoids (``merge_aug_masks``), (N, C, 28, 28)."""
    probs = []
    for stage in range(roi_head.num_stages):
        logits = roi_head.mask_head[stage](roi_features(roi_head.mask_roi_extractor[stage], feats, rois))
        probs.append(logits.sigmoid()[None])
    return torch.cat(probs).mean(dim=0)


def _check_rcnn_nms(cfg: dict) -> None:
    """The R-CNN stage's NMS: plain, or soft with settings :func:`.box_ops.multiclass_soft_nms` reproduces."""
    nms = dict(cfg.nms)
    if nms.get('type', 'nms') == 'nms':
        return
    _check(nms.get('type') == 'soft_nms' and set(nms) <= SOFT_NMS_KEYS
           and nms.get('method', 'linear') in ('linear', 'gaussian'), f'R-CNN NMS {nms}')
    _check(cfg.max_per_img > 0, f'soft-NMS with max_per_img={cfg.max_per_img} (the graph runs max_per_img picks)')


def check_supported(detector: nn.Module) -> MaskStep:
    """Raise :class:`UnsupportedDetector` for any part of ``detector`` the graph would not reproduce;
    return the mask step of its RoI head (:func:`cascade_mask_probs` or :func:`.htc.htc_mask_probs`)."""
    from mmcv.ops import RoIAlign
    from mmdet.models.dense_heads import RPNHead
    from mmdet.models.roi_heads import CascadeRoIHead, HybridTaskCascadeRoIHead
    from mmdet.models.roi_heads.mask_heads import FCNMaskHead, HTCMaskHead
    from mmdet.models.task_modules.coders import DeltaXYWHBBoxCoder
    roi_head = getattr(detector, 'roi_head', None)
    htc = type(roi_head) is HybridTaskCascadeRoIHead
    _check(type(roi_head) is CascadeRoIHead or htc, f'roi_head {type(roi_head).__name__}')
    _check(type(detector.rpn_head) is RPNHead and detector.rpn_head.use_sigmoid_cls, 'rpn_head')
    _check(roi_head.with_mask and not roi_head.with_shared_head, 'a cascade without masks or with a shared head')
    rpn_cfg, rcnn_cfg = detector.rpn_head.test_cfg, roi_head.test_cfg
    _check(rpn_cfg.nms.get('type', 'nms') == 'nms', f'RPN NMS {rpn_cfg.nms}')
    _check_rcnn_nms(rcnn_cfg)
    coders = [detector.rpn_head.bbox_coder] + [head.bbox_coder for head in roi_head.bbox_head]
    for coder in coders:
        _check(type(coder) is DeltaXYWHBBoxCoder and coder.clip_border and not coder.add_ctr_clamp,
               f'box coder {coder}')
    for head in roi_head.bbox_head:
        _check(not head.custom_activation and head.with_cls and head.with_reg, f'box head {type(head).__name__}')
    for head in roi_head.mask_head:
        _check(type(head) is (HTCMaskHead if htc else FCNMaskHead), f'mask head {type(head).__name__}')
    for extractor in list(roi_head.bbox_roi_extractor) + list(roi_head.mask_roi_extractor):
        for layer in extractor.roi_layers:  # the semantics measured equal to ONNX RoiAlign (docs/deploy.md)
            _check(type(layer) is RoIAlign and layer.pool_mode == 'avg' and layer.aligned, f'RoI layer {layer}')
    if not htc:
        return cascade_mask_probs
    _check(not roi_head.with_semantic, 'HTC\'s semantic branch (semantic_head: its features are added to every '
           'RoI; leave it out, as mmdet::htc/htc-without-semantic_r50_fpn_1x_coco.py does)')
    # without mask_info_flow, mmdet 3.3's HTC test path gets a [logits, features] list from each head
    _check(roi_head.mask_info_flow, 'HTC without mask_info_flow')
    return htc_mask_probs


class DetectorGraph(nn.Module):
    """(1, 3, H, W) preprocessed image, img_shape (2,) = its (h, w) before padding -> boxes (N, 4) in
    the input's pixels, scores (N,), labels (N,) int64, masks (N, 28, 28) probabilities on each box.

    Args:
        detector: a built mmdet ``CascadeRCNN`` or ``HybridTaskCascade`` (:func:`check_supported`), in eval mode.
    """

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.mask_probs = check_supported(detector)
        self.detector = detector

    def proposals(self, feats: List[Tensor], img_shape: Tensor) -> Tensor:
        """``RPNHead.predict`` (top ``nms_pre`` per level, decode, size filter, NMS across levels as
        groups, ``max_per_img``): -> proposals (P, 4)."""
        head = self.detector.rpn_head
        cfg = head.test_cfg
        generator = head.prior_generator
        cls_scores, bbox_preds = head(feats)
        anchors, deltas, scores, levels = [], [], [], []
        for level, (cls_score, bbox_pred) in enumerate(zip(cls_scores, bbox_preds)):
            level_scores = cls_score[0].permute(1, 2, 0).reshape(-1).sigmoid()
            level_deltas = bbox_pred[0].permute(1, 2, 0).reshape(-1, 4)
            level_anchors = grid_anchors(generator.base_anchors[level], generator.strides[level], cls_score)
            if cfg.get('nms_pre', -1) > 0:
                level_scores, keep = level_scores.topk(topk_count(level_scores, cfg.nms_pre))
                level_deltas, level_anchors = level_deltas[keep], level_anchors[keep]
            anchors.append(level_anchors)
            deltas.append(level_deltas)
            scores.append(level_scores)
            levels.append(torch.full_like(level_scores, level, dtype=torch.long))
        coder = head.bbox_coder
        boxes = delta2bbox(torch.cat(anchors), torch.cat(deltas), coder.means, coder.stds, img_shape)
        scores, levels = torch.cat(scores), torch.cat(levels)
        min_size = cfg.get('min_bbox_size', -1)
        if min_size >= 0:
            wh = boxes[:, 2:] - boxes[:, :2]
            valid = (wh[:, 0] > min_size) & (wh[:, 1] > min_size)
            boxes, scores, levels = boxes[valid], scores[valid], levels[valid]
        keep = batched_nms(boxes, scores, levels, cfg.nms.iou_threshold)[:cfg.max_per_img]
        return boxes[keep]

    def detect(self, feats: List[Tensor], proposals: Tensor, img_shape: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """``CascadeRoIHead.predict_bbox``: each stage refines the RoIs by its class-specific regression
        of the argmax class, the class logits of all stages are averaged, the last stage's regression
        decodes the boxes, then ``multiclass_nms`` -> boxes (N, 4), scores (N,), labels (N,)."""
        roi_head = self.detector.roi_head
        rois = torch.cat([proposals.new_zeros(proposals.shape[0], 1), proposals], dim=1)
        stage_logits = []
        for stage in range(roi_head.num_stages):
            head = roi_head.bbox_head[stage]
            cls_score, bbox_pred = head(roi_features(roi_head.bbox_roi_extractor[stage], feats, rois))
            stage_logits.append(cls_score)
            if stage < roi_head.num_stages - 1:
                if not head.reg_class_agnostic:
                    label = cls_score[:, :-1].argmax(dim=1) * 4
                    bbox_pred = torch.gather(bbox_pred, 1, torch.stack([label + i for i in range(4)], 1))
                boxes = delta2bbox(rois[:, 1:], bbox_pred, head.bbox_coder.means, head.bbox_coder.stds, img_shape)
                rois = torch.cat([rois[:, :1], boxes], dim=1)
        scores = F.softmax(sum(stage_logits) / float(len(stage_logits)), dim=-1)
        coder = roi_head.bbox_head[-1].bbox_coder
        boxes = delta2bbox(rois[:, 1:], bbox_pred, coder.means, coder.stds, img_shape).reshape(rois.shape[0], -1, 4)
        boxes = boxes.expand(-1, scores.shape[1] - 1, -1)  # class-agnostic regression: one box for all classes
        cfg = roi_head.test_cfg
        return multiclass_nms(boxes, scores, cfg.score_thr, cfg.nms, cfg.max_per_img)

    def masks(self, feats: List[Tensor], boxes: Tensor, labels: Tensor) -> Tensor:
        """The RoI head's mask step up to pasting (:func:`check_supported`), at each box's label -> (N, 28, 28)."""
        roi_head = self.detector.roi_head
        rois = torch.cat([boxes.new_zeros(boxes.shape[0], 1), boxes], dim=1)
        probs = self.mask_probs(roi_head, feats, rois)
        if roi_head.mask_head[-1].class_agnostic:
            return probs[:, 0]
        index = labels[:, None, None, None].expand(-1, 1, probs.shape[2], probs.shape[3])
        return torch.gather(probs, 1, index)[:, 0]

    def forward(self, inputs: Tensor, img_shape: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """inputs (1, 3, H, W), img_shape (2,) float -> boxes (N, 4), scores (N,), labels (N,), masks (N, 28, 28)."""
        feats = list(self.detector.extract_feat(inputs))
        boxes, scores, labels = self.detect(feats, self.proposals(feats, img_shape), img_shape)
        return boxes, scores, labels, self.masks(feats, boxes, labels)
