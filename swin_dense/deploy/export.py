"""Export a trained segmentor, Cascade Mask R-CNN or HTC++ to ``DIR/model.onnx`` + ``DIR/export.json``
(tools/export_onnx.py).

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

from ..inference.predictor import TASK_NAMES, Predictor
from .adaptive_pool import replace_adaptive_pools
from .detector import DET_INPUTS, DET_OUTPUTS, DetectorGraph, UnsupportedDetector
from .graphs import SEG_INPUTS, SEG_OUTPUTS, SegmentorGraph
from .record import ExportRecord, SizePolicy, frozen_test_cfg
from .sizes import trace_side

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
    """``'fixed'`` at ``shape``, or ``'dynamic'`` when ``shape`` is None: traced at :func:`trace_side`,
    run at any size of at least one patch (:mod:`.sizes`)."""
    windows, patch = _backbone_windows(model)
    if shape is not None:
        return SizePolicy('fixed', tuple(shape))
    side = trace_side(windows, patch)
    return SizePolicy('dynamic', (side, side), patch)


def exportable_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` in eval mode that traces into standard ONNX ops (module docstring)."""
    model = copy.deepcopy(model).eval()
    if hasattr(model.backbone, 'set_fused_linear'):
        model.backbone.set_fused_linear(False)
    replace_adaptive_pools(model)
    return model


def _segmentor_graph(predictor: Predictor, config: str, policy: SizePolicy) -> Tuple[torch.nn.Module, tuple, Dict]:
    """The traced module, its example inputs and its dynamic axes, for a segmentor."""
    mode = (predictor.cfg.model.get('test_cfg') or {}).get('mode', 'whole')
    if mode != 'whole':
        raise ExportError(f'{config!r} tests in {mode!r} mode; the graph runs whole images: '
                          'pass --cfg-options model.test_cfg.mode=whole')
    axes = {SEG_INPUTS[0]: {2: 'height', 3: 'width'}, SEG_OUTPUTS[0]: {2: 'height', 3: 'width'}}
    return SegmentorGraph(exportable_copy(predictor.model)), (torch.zeros(1, 3, *policy.shape),), axes


def _detector_graph(predictor: Predictor, config: str, policy: SizePolicy) -> Tuple[torch.nn.Module, tuple, Dict]:
    """The traced module, its example inputs and its dynamic axes, for a Cascade Mask R-CNN or HTC. The example
    image is random: the trace must keep boxes through every NMS (an empty set takes other branches)."""
    try:
        graph = DetectorGraph(exportable_copy(predictor.model))
    except UnsupportedDetector as e:
        raise ExportError(f'{config!r}: {e}') from None
    image = torch.randn(1, 3, *policy.shape, generator=torch.Generator().manual_seed(0))
    axes = {DET_INPUTS[0]: {2: 'height', 3: 'width'}, **{name: {0: 'detections'} for name in DET_OUTPUTS}}
    return graph, (image, torch.tensor(policy.shape, dtype=torch.float32)), axes


def _frozen_settings(predictor: Predictor) -> Dict:
    """Config settings the graph holds as constants: a detector's ``test_cfg`` (score threshold, NMS,
    proposal and detection counts), which the ONNX predictor checks against the config it runs with."""
    if predictor.task == 'seg':
        return {}
    return dict(test_cfg=frozen_test_cfg(predictor.cfg))


def export_onnx(config: str, checkpoint: str, out_dir: str, shape: Optional[Tuple[int, int]] = None,
                cfg_options: Optional[Dict] = None) -> ExportRecord:
    """Write ``out_dir/model.onnx`` and ``out_dir/export.json``.

    Args:
        config: the mmseg or mmdet config of the checkpoint.
        checkpoint: a full segmentor or detector checkpoint.
        out_dir: created if missing.
        shape: (H, W) for a fixed-size graph; None for a dynamic one (:mod:`.sizes`).
        cfg_options: config overrides, as ``--cfg-options``.

    Returns:
        the record written beside the graph.

    Raises:
        ExportError: a detector other than Cascade Mask R-CNN or HTC (:mod:`.detector`), a segmentor not in
            'whole' test mode, or a backbone other than SwinTransformerV2.
        swin_dense.inference.predictor.PredictorError: config / checkpoint missing or not a pair.
    """
    predictor = Predictor(config, checkpoint, 'cpu', cfg_options, inference_mode=False)  # the model as built
    policy = size_policy(predictor.model, shape)
    if predictor.task == 'seg':
        graph, example, axes = _segmentor_graph(predictor, config, policy)
        names = (SEG_INPUTS, SEG_OUTPUTS)
    else:
        graph, example, axes = _detector_graph(predictor, config, policy)
        names = (DET_INPUTS, DET_OUTPUTS)
    if policy.kind == 'fixed':  # only the number of detections stays dynamic
        axes = {name: axis for name, axis in axes.items() if 'height' not in axis.values()}
    os.makedirs(out_dir, exist_ok=True)
    path = osp.join(out_dir, ONNX_NAME)
    with torch.no_grad(), warnings.catch_warnings():
        # each Python `if` on a size warns; the size policy is what makes the trace valid (.sizes)
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        torch.onnx.export(graph.eval(), example, path, dynamo=False, opset_version=OPSET, input_names=names[0],
                          output_names=names[1], dynamic_axes=axes or None)
    pre = predictor.model.data_preprocessor
    record = ExportRecord(
        task=TASK_NAMES[predictor.task], config=osp.basename(config), classes=list(predictor.classes),
        palette=[list(p) for p in predictor.dataset_meta['palette']],
        mean=pre.mean.flatten().tolist(), std=pre.std.flatten().tolist(),
        bgr_to_rgb=bool(getattr(pre, '_channel_conversion', False)), size_policy=policy,
        input_names=names[0], output_names=names[1],
        exporter=dict(name='torch.onnx.export', dynamo=False, opset=OPSET, torch=torch.__version__,
                      checkpoint=osp.basename(checkpoint), **_frozen_settings(predictor)))
    record.save(out_dir)
    return record
