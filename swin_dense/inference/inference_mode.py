"""PyTorch inference mode of a loaded detector or segmentor: the same model, set up for speed on the
CPU, computing the same results up to rounding (docs/benchmarks.md, "Whole-model inference").

* **conv-BN folding**: mmcv's :func:`~mmcv.cnn.fuse_conv_bn` (what mmdet's ``--fuse-conv-bn`` uses)
  folds every eval-mode BatchNorm into the convolution before it.
* **RoIAlign**: mmcv's ``RoIAlign`` (``aligned=True``, average pooling) runs through
  :func:`torchvision.ops.roi_align` (its own ``use_torchvision`` option), which gives the same values
  (measured bit-equal, ``tests/inference/test_inference_mode.py``) with a faster CPU kernel.
* **NMS**: the ``type='nms'`` suppression of a detector's test configs (RPN, R-CNN) runs through
  torchvision's CPU kernel (:mod:`swin_dense.inference.nms`), with mmcv's result (measured equal,
  ties included; ``tests/inference/test_nms.py``).
* **channels-last RoI heads**: a two-stage detector's ``roi_head`` (box and mask heads, whose
  convolutions run on batches of small RoI maps) keeps its weights channels-last, so oneDNN runs those
  convolutions in that layout. Not the whole model: UPerNet's large convolutions measured slower so.
* **Winograd 3x3 convolutions** (:mod:`swin_dense.inference.winograd`): 3x3 convolutions over
  whole-image maps run through NNPACK's Winograd kernel, where PyTorch has NNPACK, and those over
  batches of small maps (the RoI heads') through F(4x4, 3x3) in PyTorch matrix products. Unlike the
  changes above, this one computes other products, with other rounding: such a convolution differs from
  float64 by up to 1.8e-5 of its largest output, the direct one by up to 5.9e-6
  (``tools/bench_winograd.py``, docs/benchmarks.md section 6).

:class:`~swin_dense.inference.predictor.Predictor` applies it to models on the CPU
(``inference_mode=True``); ``tools/infer.py`` and ``tools/serve.py`` turn it off with ``--eager``.
"""
from typing import List

import torch
import torch.nn as nn

from .nms import use_torchvision_nms
from .winograd import use_winograd


def to_inference_mode(model: nn.Module) -> List[str]:
    """Set up an eval-mode CPU ``model`` in place (module docstring).

    Returns:
        what was changed, e.g. ``['conv-BN folding (12 BatchNorms)', 'torchvision RoIAlign (24)',
        'torchvision NMS (2)', 'channels-last RoI heads', 'Winograd 3x3 convolutions (29)']``.

    Raises:
        ValueError: ``model`` is in training mode (its BatchNorm statistics would still change).
    """
    from mmcv.cnn import fuse_conv_bn
    from mmcv.ops import RoIAlign
    if model.training:
        raise ValueError('to_inference_mode folds BatchNorm statistics into convolutions: call model.eval() first')
    norms = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    fuse_conv_bn(model)
    folded = norms - sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    changes = [f'conv-BN folding ({folded} BatchNorms)'] if folded else []
    roi_layers = [m for m in model.modules()
                  if isinstance(m, RoIAlign) and m.aligned and m.pool_mode == 'avg' and not m.use_torchvision]
    for layer in roi_layers:
        layer.use_torchvision = True
    if roi_layers:
        changes.append(f'torchvision RoIAlign ({len(roi_layers)})')
    suppressions = use_torchvision_nms(model)
    if suppressions:
        changes.append(f'torchvision NMS ({suppressions})')
    roi_head = getattr(model, 'roi_head', None)
    if isinstance(roi_head, nn.Module):
        roi_head.to(memory_format=torch.channels_last)
        changes.append('channels-last RoI heads')
    winograd = use_winograd(model)
    if winograd:
        changes.append(f'Winograd 3x3 convolutions ({winograd})')
    return changes
