"""mmcv's NMS through torchvision's CPU kernel, for inference mode.

mmcv's ``batched_nms`` (what mmdet's RPN head and ``multiclass_nms`` call) takes its NMS function from
the ``type`` of the ``nms`` test config: a name in ``mmcv.ops``, or a callable. :func:`use_torchvision_nms`
sets the heads' ``type='nms'`` to :func:`nms`, which computes ``mmcv.ops.nms``'s result with
``torchvision.ops.nms``: the same greedy suppression (IoU above the threshold, areas without mmcv's
``offset``), 3x faster on the CPU for 1000 boxes (docs/benchmarks.md, section 6). The two kernels put
equal scores in different orders (so they keep different boxes among ties); :func:`nms` hands
torchvision the boxes already sorted as mmcv's kernel sorts them, which torchvision's sort keeps.
"""
import copy
from typing import Tuple

import torch
import torch.nn as nn


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, offset: int = 0,
        score_threshold: float = 0, max_num: int = -1) -> Tuple[torch.Tensor, torch.Tensor]:
    """``mmcv.ops.nms`` (same arguments, same result), through ``torchvision.ops.nms`` for CPU tensors
    with ``offset`` 0 and neither ``score_threshold`` nor ``max_num``; anything else goes to mmcv.

    Args:
        boxes: (N, 4) x1, y1, x2, y2.
        scores: (N,).

    Returns:
        the kept boxes with their scores (K, 5), and their indices (K,), highest score first.
    """
    from mmcv.ops import nms as mmcv_nms
    if (not isinstance(boxes, torch.Tensor) or boxes.device.type != 'cpu' or offset != 0
            or score_threshold > 0 or max_num > 0):
        return mmcv_nms(boxes, scores, iou_threshold, offset, score_threshold, max_num)
    from torchvision.ops import nms as torchvision_nms
    order = scores.sort(0, descending=True)[1]  # mmcv's kernel sorts so, ties included
    keep = order[torchvision_nms(boxes[order], scores[order], float(iou_threshold))]
    return torch.cat([boxes[keep], scores[keep, None]], dim=1), keep


def use_torchvision_nms(model: nn.Module) -> int:
    """Point every ``nms=dict(type='nms', ...)`` of the test configs of ``model``'s modules (a detector's
    ``rpn_head`` and ``roi_head``) at :func:`nms`. Each such module gets its own copy of its test config,
    so the config the model was built from is left as it was. Returns how many were changed."""
    changed = 0
    for module in model.modules():
        test_cfg = getattr(module, 'test_cfg', None)
        if not isinstance(test_cfg, dict) or not isinstance(test_cfg.get('nms'), dict):
            continue
        if test_cfg['nms'].get('type', 'nms') == 'nms':
            module.test_cfg = copy.deepcopy(test_cfg)
            module.test_cfg['nms']['type'] = nms
            changed += 1
    return changed
