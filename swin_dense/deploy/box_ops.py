"""mmdet's test-time box operations re-expressed so that one ONNX trace holds at every input size.

mmdet computes these with Python sizes (``len``, ``if inds.numel() > 0``, in-place slice clamps)
that a trace freezes; here every size comes from a tensor's shape and every branch is a tensor op.
Each function names the mmdet function it reproduces; ``tests/deploy/test_box_ops.py`` compares soft-NMS
with mmcv and ``tests/deploy/test_detector_export.py`` / ``test_htc_export.py``
compares the whole detector with mmdet's ``predict``.
"""
import math
from typing import Any, Dict, Sequence, Tuple

import numpy as np
import torch
import torchvision
from torch import Tensor


def grid_anchors(base_anchors: Tensor, stride: Tuple[int, int], feat: Tensor) -> Tensor:
    """``AnchorGenerator.single_level_grid_priors`` for the map ``feat`` (1, C, H, W) -> (H * W * A, 4),
    ordered by pixel (row-major), then by base anchor (A, 4)."""
    height, width = feat.shape[-2:]
    shift_x = torch.arange(width, device=feat.device).to(feat.dtype) * stride[0]
    shift_y = torch.arange(height, device=feat.device).to(feat.dtype) * stride[1]
    yy, xx = torch.meshgrid(shift_y, shift_x, indexing='ij')
    shifts = torch.stack([xx, yy, xx, yy], dim=-1).reshape(-1, 4)
    return (base_anchors.to(feat)[None, :, :] + shifts[:, None, :]).reshape(-1, 4)


def delta2bbox(rois: Tensor, deltas: Tensor, means: Sequence[float], stds: Sequence[float], img_shape: Tensor,
               wh_ratio_clip: float = 16 / 1000) -> Tensor:
    """``mmdet.models.task_modules.coders.delta_xywh_bbox_coder.delta2bbox`` (clip_border, no centre
    clamp) with the image size as a tensor: rois (N, 4), deltas (N, 4 * C), img_shape (2,) = (h, w)
    -> boxes (N, 4 * C) clipped to the image."""
    num_rois = deltas.shape[0]
    num_classes = deltas.shape[1] // 4
    deltas = deltas.reshape(-1, 4)
    denorm = deltas * deltas.new_tensor(stds).view(1, -1) + deltas.new_tensor(means).view(1, -1)
    dxy, dwh = denorm[:, :2], denorm[:, 2:]
    rois = rois.repeat(1, num_classes).reshape(-1, 4)
    pxy = (rois[:, :2] + rois[:, 2:]) * 0.5
    pwh = rois[:, 2:] - rois[:, :2]
    max_ratio = float(np.abs(np.log(wh_ratio_clip)))
    gxy = pxy + pwh * dxy
    gwh = pwh * dwh.clamp(min=-max_ratio, max=max_ratio).exp()
    boxes = torch.cat([gxy - gwh * 0.5, gxy + gwh * 0.5], dim=-1)
    upper = img_shape.to(boxes).flip(0).repeat(2)  # (w, h, w, h)
    boxes = torch.minimum(boxes.clamp(min=0), upper)
    return boxes.reshape(num_rois, -1)


def topk_count(scores: Tensor, k: int) -> Tensor:
    """``min(k, len(scores))`` as a traced value, for ``topk`` over a number of anchors that depends on
    the input size (mmdet sorts and keeps ``nms_pre`` only when there are more)."""
    return torch.clamp(torch.as_tensor(scores.shape[0]), max=k)  # a traced size is a tensor while tracing


def batched_nms(boxes: Tensor, scores: Tensor, groups: Tensor, iou_threshold: float) -> Tensor:
    """Indices kept by NMS within each group, by decreasing score: ``mmcv.ops.batched_nms`` with
    ``dict(type='nms')``. Both offset the boxes of each group by ``groups * (boxes.max() + 1)``;
    torchvision's ``nms`` exports as ONNX NonMaxSuppression."""
    return torchvision.ops.batched_nms(boxes, scores, groups, iou_threshold)


def multiclass_nms(boxes: Tensor, scores: Tensor, score_thr: float, nms_cfg: Dict[str, Any],
                   max_per_img: int) -> Tuple[Tensor, Tensor, Tensor]:
    """``mmdet.models.layers.multiclass_nms`` with ``nms_cfg`` ``dict(type='nms', ...)`` or
    ``dict(type='soft_nms', ...)`` (:func:`multiclass_soft_nms`): boxes (N, C, 4), scores (N, C + 1) with
    background last -> kept boxes (K, 4), scores (K,), labels (K,) by decreasing score, K <= max_per_img."""
    if nms_cfg.get('type', 'nms') == 'soft_nms':
        return multiclass_soft_nms(boxes, scores, score_thr, nms_cfg, max_per_img)
    boxes, scores, labels = _candidates(boxes, scores, score_thr)
    keep = batched_nms(boxes, scores, labels, nms_cfg['iou_threshold'])[:max_per_img]
    return boxes[keep], scores[keep], labels[keep]


def _candidates(boxes: Tensor, scores: Tensor, score_thr: float) -> Tuple[Tensor, Tensor, Tensor]:
    """``multiclass_nms``'s candidates: boxes (N, C, 4), scores (N, C + 1) -> the (box, class) pairs scoring
    above ``score_thr``, in (box, class) order: boxes (M, 4), scores (M,), labels (M,)."""
    num_classes = scores.shape[1] - 1
    scores = scores[:, :-1]
    labels = torch.arange(num_classes, device=scores.device).view(1, -1).expand_as(scores).reshape(-1)
    boxes, scores = boxes.reshape(-1, 4), scores.reshape(-1)
    valid = scores > score_thr
    return boxes[valid], scores[valid], labels[valid]


def soft_nms_picks(boxes: Tensor, scores: Tensor, iou_threshold: float, max_picks: int, method: str = 'linear',
                   sigma: float = 0.5, offset: int = 0) -> Tuple[Tensor, Tensor]:
    """The first ``max_picks`` picks of ``mmcv.ops.soft_nms``'s CPU kernel, before its ``min_score`` rule:
    boxes (M, 4), scores (M,) -> indices (max_picks,) into ``boxes``, decayed scores (max_picks,).

    Each pick is the highest remaining score; every box left then has its score multiplied by
    ``1 - iou`` where its IoU with the pick is ``>= iou_threshold`` (``'linear'``), or by
    ``exp(-iou ** 2 / sigma)`` (``'gaussian'``), with mmcv's float32 arithmetic (widths and heights
    ``x2 - x1 + offset``). Picks are in the kernel's order, so their scores never increase. mmcv drops a
    box once its score is below ``min_score``; a dropped box is never picked before one that is kept
    (scores only decay), so the caller applies ``min_score`` to the picks (:func:`multiclass_soft_nms`).
    The loop runs ``max_picks`` times whatever M is: a sentinel candidate (score -inf, index M) is what
    is picked once the M candidates are used up, including when M = 0.
    """
    num = scores.shape[0]
    boxes = torch.cat([boxes, boxes.new_zeros(1, 4)])
    taken = torch.cat([torch.zeros_like(scores, dtype=torch.bool), scores.new_ones(1, dtype=torch.bool)])
    live = torch.cat([scores, scores.new_zeros(1)])
    live = torch.where(taken, torch.full_like(live, -math.inf), live)  # new_full(-inf) fails to export
    index = torch.arange(num + 1, device=scores.device)
    x1, y1, x2, y2 = boxes.unbind(dim=1)
    areas = (x2 - x1 + offset) * (y2 - y1 + offset)
    picks, picked = [], []
    for _ in range(max_picks):
        i = live.argmax()
        picks.append(i)
        picked.append(live[i])
        w = (torch.minimum(x2[i], x2) - torch.maximum(x1[i], x1) + offset).clamp(min=0)
        h = (torch.minimum(y2[i], y2) - torch.maximum(y1[i], y1) + offset).clamp(min=0)
        inter = w * h
        iou = inter / (areas[i] + areas - inter)
        if method == 'linear':
            weight = torch.where(iou >= iou_threshold, 1 - iou, torch.ones_like(iou))
        else:
            weight = torch.exp(-(iou * iou) / sigma)
        taken = taken | (index == i)
        live = torch.where(taken, torch.full_like(live, -math.inf), live * weight)
    return torch.stack(picks), torch.stack(picked)


def multiclass_soft_nms(boxes: Tensor, scores: Tensor, score_thr: float, nms_cfg: Dict[str, Any],
                        max_per_img: int) -> Tuple[Tensor, Tensor, Tensor]:
    """``mmdet.models.layers.multiclass_nms`` with ``nms_cfg = dict(type='soft_nms', iou_threshold,
    min_score=1e-3, sigma=0.5, method='linear', offset=0, split_thr=10000)``: boxes (N, C, 4), scores
    (N, C + 1) with background last -> boxes (K, 4), decayed scores (K,), labels (K,) by decreasing
    score, K <= max_per_img.

    As ``mmcv.ops.batched_nms``: one soft-NMS over all candidates, each class's boxes shifted by
    ``label * (boxes.max() + 1)`` so that classes never overlap (:func:`soft_nms_picks`), keeping the
    picks whose decayed score is ``>= min_score``. mmcv's kernel never checks its first pick against
    ``min_score``: with fewer than ``split_thr`` candidates ``batched_nms`` runs it once (the first pick
    is kept at any score), from ``split_thr`` on once per class (each class's first pick, its highest
    candidate, is kept at any score, and the kept boxes are sorted by score).
    """
    min_score = nms_cfg.get('min_score', 1e-3)
    dense_boxes, dense_scores = boxes, scores
    boxes, scores, labels = _candidates(boxes, scores, score_thr)
    max_coordinate = torch.cat([boxes.reshape(-1), boxes.new_zeros(1)]).max()  # boxes are clipped to >= 0
    shifted = boxes + (labels.to(boxes) * (max_coordinate + 1))[:, None]
    picks, picked = soft_nms_picks(shifted, scores, nms_cfg['iou_threshold'], max_per_img,
                                   nms_cfg.get('method', 'linear'), nms_cfg.get('sigma', 0.5), nms_cfg.get('offset', 0))
    per_class = torch.as_tensor(scores.shape[0]) >= nms_cfg.get('split_thr', 10000)  # a traced size is a tensor
    first = (torch.arange(max_per_img, device=picks.device) == 0) & ~per_class
    keep = (picked > -math.inf) & ((picked >= min_score) | first)
    picks = picks[keep]
    low_boxes, low_scores, low_labels = _low_class_firsts(dense_boxes, dense_scores, score_thr, min_score, per_class)
    return (torch.cat([boxes[picks], low_boxes])[:max_per_img], torch.cat([picked[keep], low_scores])[:max_per_img],
            torch.cat([labels[picks], low_labels])[:max_per_img])


def _low_class_firsts(boxes: Tensor, scores: Tensor, score_thr: float, min_score: float,
                      per_class: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """What mmcv's per-class soft-NMS runs add below ``min_score`` (:func:`multiclass_soft_nms`): boxes
    (N, C, 4), scores (N, C + 1), per_class () bool -> for each class whose highest candidate scores
    below ``min_score``, that candidate, by decreasing score: boxes (L, 4), scores (L,), labels (L,);
    none unless ``per_class``."""
    scores = scores[:, :-1]
    # a row of -inf, so that the maximum over no boxes is defined
    valid = torch.cat([scores > score_thr, scores.new_zeros(1, scores.shape[1], dtype=torch.bool)])
    scores = torch.cat([scores, scores.new_zeros(1, scores.shape[1])])
    scores = torch.where(valid, scores, torch.full_like(scores, -math.inf))
    boxes = torch.cat([boxes, boxes.new_zeros(1, *boxes.shape[1:])])
    class_max, best = scores.max(dim=0)
    low = per_class & (class_max < min_score)
    class_max, order = torch.where(low, class_max, torch.full_like(class_max, -math.inf)).sort(descending=True)
    labels = order[class_max > -math.inf]
    return boxes[best[labels], labels], class_max[class_max > -math.inf], labels


def roi_features(extractor: torch.nn.Module, feats: Sequence[Tensor], rois: Tensor) -> Tensor:
    """``SingleRoIExtractor.forward``: rois (K, 5) -> (K, C, s, s), each RoI pooled from the level
    ``map_roi_levels`` assigns it. mmdet skips a level without RoIs (an ``if`` that a trace would
    freeze); here every level pools its, possibly zero, RoIs and scatters them into place. mmcv's
    ``RoIAlign`` becomes torchvision's ``roi_align`` (ONNX RoiAlign, ``half_pixel`` for ``aligned=True``)."""
    feats = feats[:extractor.num_inputs]
    levels = extractor.map_roi_levels(rois, len(feats))
    layer = extractor.roi_layers[0]
    pooled = rois.new_zeros(rois.shape[0], feats[0].shape[1], *layer.output_size)
    for level, (feat, layer) in enumerate(zip(feats, extractor.roi_layers)):
        index = torch.nonzero(levels == level).squeeze(1)
        level_feats = torchvision.ops.roi_align(feat, rois[index], layer.output_size, layer.spatial_scale,
                                                layer.sampling_ratio, layer.aligned)
        pooled = pooled.index_put((index,), level_feats)
    return pooled
