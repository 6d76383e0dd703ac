"""Export a trained segmentor to ``DIR/model.onnx`` + ``DIR/export.json`` (tools/export_onnx.py).

The model is loaded and checked as for inference (:class:`swin_dense.inference.predictor.Predictor`:
the safe checkpoint reader and the fit check), then traced by the TorchScript ONNX exporter
(``torch.onnx.export(dynamo=False)``) with standard ONNX ops. Why not the dynamo exporter or
mmdeploy: docs/deploy.md. Before tracing, a copy of the model is made exportable: the oneDNN linear
kernel is switched off (it is no ONNX op) and adaptive pooling becomes matrix products
(:mod:`.adaptive_pool`). Dynamic exports are traced at :func:`.sizes.trace_side`.
"""
import copy
import os
import os.path as osp
import warnings
from typing import Dict, Optional, Tuple

import torch

from ..inference.predictor import Predictor
from .adaptive_pool import replace_adaptive_pools
from .graphs import SEG_INPUTS, SEG_OUTPUTS, SegmentorGraph
from .record import ExportRecord, SizePolicy
from .sizes import min_side, trace_side

ONNX_NAME = 'model.onnx'
OPSET = 17


class ExportError(RuntimeError):
    """The model cannot be exported as asked; the message says why and what to do."""


def _backbone_windows(model: torch.nn.Module) -> Tuple[list, int]:
    backbone = model.backbone
    if not hasattr(backbone, 'window_size') or not hasattr(backbone, 'patch_embed'):
        raise ExportError(f'backbone {type(backbone).__name__} is not swin_dense\'s SwinTransformerV2: '
                          'only its window regime is known to the size policy')
    return list(backbone.window_size), backbone.patch_embed.patch_size


def size_policy(model: torch.nn.Module, shape: Optional[Tuple[int, int]]) -> SizePolicy:
    """``'fixed'`` at ``shape``, or ``'dynamic'`` (traced at :func:`trace_side`) when ``shape`` is None."""
    windows, patch = _backbone_windows(model)
    if shape is not None:
        return SizePolicy('fixed', tuple(shape))
    smallest = min_side(windows, patch)
    side = trace_side(windows, patch, smallest)
    return SizePolicy('dynamic', (side, side), smallest)


def exportable_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` in eval mode that traces into standard ONNX ops (module docstring)."""
    model = copy.deepcopy(model).eval()
    if hasattr(model.backbone, 'set_fused_linear'):
        model.backbone.set_fused_linear(False)
    replace_adaptive_pools(model)
    return model


def export_onnx(config: str, checkpoint: str, out_dir: str, shape: Optional[Tuple[int, int]] = None,
                cfg_options: Optional[Dict] = None) -> ExportRecord:
    """Write ``out_dir/model.onnx`` and ``out_dir/export.json``.

    Args:
        config: the mmseg config of the checkpoint.
        checkpoint: a full segmentor checkpoint.
        out_dir: created if missing.
        shape: (H, W) for a fixed-size graph; None for a dynamic one (:mod:`.sizes`).
        cfg_options: config overrides, as ``--cfg-options``.

    Returns:
        the record written beside the graph.

    Raises:
        ExportError: a detection config (not exportable yet), a segmentor not in 'whole' test mode, or
            a backbone other than SwinTransformerV2.
        swin_dense.inference.predictor.PredictorError: config / checkpoint missing or not a pair.
    """
    predictor = Predictor(config, checkpoint, 'cpu', cfg_options)
    if predictor.task != 'seg':
        raise ExportError(f'{config!r} is a detection config: only segmentors are exported so far '
                          '(docs/deploy.md says why detection is not)')
    mode = (predictor.cfg.model.get('test_cfg') or {}).get('mode', 'whole')
    if mode != 'whole':
        raise ExportError(f'{config!r} tests in {mode!r} mode; the graph runs whole images: '
                          'pass --cfg-options model.test_cfg.mode=whole')
    model = exportable_copy(predictor.model)
    policy = size_policy(model, shape)
    os.makedirs(out_dir, exist_ok=True)
    path = osp.join(out_dir, ONNX_NAME)
    dynamic_axes = None
    if policy.kind == 'dynamic':
        dynamic_axes = {SEG_INPUTS[0]: {2: 'height', 3: 'width'}, SEG_OUTPUTS[0]: {2: 'height', 3: 'width'}}
    example = torch.zeros(1, 3, *policy.shape)
    with torch.no_grad(), warnings.catch_warnings():
        # each Python `if` on a size warns; the size policy is what makes the trace valid (.sizes)
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        torch.onnx.export(SegmentorGraph(model), (example,), path, dynamo=False, opset_version=OPSET,
                          input_names=SEG_INPUTS, output_names=SEG_OUTPUTS, dynamic_axes=dynamic_axes)
    pre = predictor.model.data_preprocessor
    record = ExportRecord(
        task='segmentation', config=osp.basename(config), classes=list(predictor.classes),
        palette=[list(p) for p in predictor.dataset_meta['palette']],
        mean=pre.mean.flatten().tolist(), std=pre.std.flatten().tolist(),
        bgr_to_rgb=bool(getattr(pre, '_channel_conversion', False)), size_policy=policy,
        input_names=SEG_INPUTS, output_names=SEG_OUTPUTS,
        exporter=dict(name='torch.onnx.export', dynamo=False, opset=OPSET, torch=torch.__version__,
                      checkpoint=osp.basename(checkpoint)))
    record.save(out_dir)
    return record
