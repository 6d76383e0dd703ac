"""mmdet's test-time box operations re-expressed so that one ONNX trace holds at every input size.

mmdet computes these with Python sizes (``len``, ``if inds.numel() > 0``, in-place slice clamps)
that a trace freezes; here every size comes from a tensor's shape and every branch is a tensor op.
Each function names the mmdet function it reproduces; ``tests/deploy/test_detector_export.py``
compares the whole detector with mmdet's ``predict``.
"""
from typing import Sequence, Tuple

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


def multiclass_nms(boxes: Tensor, scores: Tensor, score_thr: float, iou_threshold: float,
                   max_per_img: int) -> Tuple[Tensor, Tensor, Tensor]:
    """``mmdet.models.layers.multiclass_nms`` with ``dict(type='nms')``: boxes (N, C, 4), scores
    (N, C + 1) with background last -> kept boxes (K, 4), scores (K,), labels (K,) by decreasing score,
    K <= max_per_img."""
    num_classes = scores.shape[1] - 1
    scores = scores[:, :-1]
    labels = torch.arange(num_classes, device=scores.device).view(1, -1).expand_as(scores).reshape(-1)
    boxes, scores = boxes.reshape(-1, 4), scores.reshape(-1)
    valid = scores > score_thr
    boxes, scores, labels = boxes[valid], scores[valid], labels[valid]
    keep = batched_nms(boxes, scores, labels, iou_threshold)[:max_per_img]
    return boxes[keep], scores[keep], labels[keep]


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
