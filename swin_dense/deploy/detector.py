"""A Cascade Mask R-CNN as a tensor-in, tensor-out function for the ONNX exporter: :class:`DetectorGraph`.

It re-expresses mmdet's ``TwoStageDetector.predict`` (RPN, ``CascadeRoIHead.predict``) with the
traceable operations of :mod:`.box_ops`, running the built model's own modules (backbone, neck, RPN
head, box heads, mask heads). The graph stops before pasting masks into the image: it returns each kept
box's mask probabilities on the 28 x 28 RoI grid (mean of the stages' sigmoids, mmdet's
``merge_aug_masks``, for the box's class); the runtime pastes them with mmdet's own mask head
(``swin_dense/inference/onnx_predictor.py``).
"""
from typing import List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .box_ops import batched_nms, delta2bbox, grid_anchors, multiclass_nms, roi_features, topk_count

DET_INPUTS = ['inputs', 'img_shape']
DET_OUTPUTS = ['boxes', 'scores', 'labels', 'masks']


class UnsupportedDetector(ValueError):
    """The detector has a part the graph does not reproduce; the message names it."""


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise UnsupportedDetector(f'{what}: the ONNX detector graph reproduces Cascade Mask R-CNN with '
                                  'RPNHead (sigmoid), DeltaXYWH boxes, aligned RoIAlign, plain NMS and FCN mask '
                                  'heads only (docs/deploy.md)')


def check_supported(detector: nn.Module) -> None:
    """Raise :class:`UnsupportedDetector` for any part of ``detector`` the graph would not reproduce."""
    from mmcv.ops import RoIAlign
    from mmdet.models.dense_heads import RPNHead
    from mmdet.models.roi_heads import CascadeRoIHead
    from mmdet.models.roi_heads.mask_heads import FCNMaskHead
    from mmdet.models.task_modules.coders import DeltaXYWHBBoxCoder
    roi_head = getattr(detector, 'roi_head', None)
    _check(type(roi_head) is CascadeRoIHead, f'roi_head {type(roi_head).__name__}')
    _check(type(detector.rpn_head) is RPNHead and detector.rpn_head.use_sigmoid_cls, 'rpn_head')
    _check(roi_head.with_mask and not roi_head.with_shared_head, 'a cascade without masks or with a shared head')
    rpn_cfg, rcnn_cfg = detector.rpn_head.test_cfg, roi_head.test_cfg
    _check(rpn_cfg.nms.get('type', 'nms') == 'nms' and rcnn_cfg.nms.get('type', 'nms') == 'nms',
           f'NMS {rpn_cfg.nms} / {rcnn_cfg.nms}')
    coders = [detector.rpn_head.bbox_coder] + [head.bbox_coder for head in roi_head.bbox_head]
    for coder in coders:
        _check(type(coder) is DeltaXYWHBBoxCoder and coder.clip_border and not coder.add_ctr_clamp,
               f'box coder {coder}')
    for head in roi_head.bbox_head:
        _check(not head.custom_activation and head.with_cls and head.with_reg, f'box head {type(head).__name__}')
    for head in roi_head.mask_head:
        _check(type(head) is FCNMaskHead, f'mask head {type(head).__name__}')
    for extractor in list(roi_head.bbox_roi_extractor) + list(roi_head.mask_roi_extractor):
        for layer in extractor.roi_layers:  # the semantics measured equal to ONNX RoiAlign (docs/deploy.md)
            _check(type(layer) is RoIAlign and layer.pool_mode == 'avg' and layer.aligned, f'RoI layer {layer}')


class DetectorGraph(nn.Module):
    """(1, 3, H, W) preprocessed image, img_shape (2,) = its (h, w) before padding -> boxes (N, 4) in
    the input's pixels, scores (N,), labels (N,) int64, masks (N, 28, 28) probabilities on each box.

    Args:
        detector: a built mmdet ``CascadeRCNN`` (:func:`check_supported`), in eval mode.
    """

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        check_supported(detector)
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
        return multiclass_nms(boxes, scores, cfg.score_thr, cfg.nms.iou_threshold, cfg.max_per_img)

    def masks(self, feats: List[Tensor], boxes: Tensor, labels: Tensor) -> Tensor:
        """``CascadeRoIHead.predict_mask`` up to pasting: the mean over stages of the mask heads'
        sigmoids, at each box's label -> (N, 28, 28)."""
        roi_head = self.detector.roi_head
        rois = torch.cat([boxes.new_zeros(boxes.shape[0], 1), boxes], dim=1)
        probs = []
        for stage in range(roi_head.num_stages):
            logits = roi_head.mask_head[stage](roi_features(roi_head.mask_roi_extractor[stage], feats, rois))
            probs.append(logits.sigmoid()[None])
        probs = torch.cat(probs).mean(dim=0)
        if roi_head.mask_head[-1].class_agnostic:
            return probs[:, 0]
        index = labels[:, None, None, None].expand(-1, 1, probs.shape[2], probs.shape[3])
        return torch.gather(probs, 1, index)[:, 0]

    def forward(self, inputs: Tensor, img_shape: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """inputs (1, 3, H, W), img_shape (2,) float -> boxes (N, 4), scores (N,), labels (N,), masks (N, 28, 28)."""
        feats = list(self.detector.extract_feat(inputs))
        boxes, scores, labels = self.detect(feats, self.proposals(feats, img_shape), img_shape)
        return boxes, scores, labels, self.masks(feats, boxes, labels)
