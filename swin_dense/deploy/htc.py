"""HTC's test-time mask step (``HybridTaskCascadeRoIHead.predict_mask`` up to pasting, without the
semantic branch) for :class:`.detector.DetectorGraph`; its box path is Cascade's."""
from typing import List

import torch.nn as nn
from torch import Tensor

from .box_ops import roi_features


def htc_mask_probs(roi_head: nn.Module, feats: List[Tensor], rois: Tensor) -> Tensor:
    """rois (N, 5) -> mask probabilities (N, C, 28, 28), as mmdet 3.3's ``HybridTaskCascadeRoIHead``
    (``_mask_forward(stage=-1, training=False)``, then ``merge_aug_masks``): the RoIs are pooled once, by
    the last stage's extractor; the mask heads run in turn, each adding its ``conv_res`` of the
    previous head's features (``mask_info_flow``); only the last head's logits are kept (its
    ``aug_masks.append`` is after the stage loop), and the merge of that one sigmoid is the sigmoid."""
    mask_feats = roi_features(roi_head.mask_roi_extractor[-1], feats, rois)
    last_feat = None
    for head in roi_head.mask_head:
        logits, last_feat = head(mask_feats, last_feat)
    return logits.sigmoid()
