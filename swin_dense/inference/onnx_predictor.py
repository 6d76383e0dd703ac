"""A predictor that runs an exported ``model.onnx`` with ONNX Runtime: :class:`OnnxPredictor`.

It has :class:`~swin_dense.inference.predictor.Predictor`'s public surface and reuses its test
pipeline, decoding, batching, drawing and class names; only the model differs. The config's data
preprocessor normalises and pads the batch (as for a PyTorch checkpoint) and ONNX Runtime runs the
graph image by image (graphs have batch size 1). For a segmentor, mmseg's own ``postprocess_result``
turns the logits into the same ``SegDataSample`` (resized to the original image, ``pred_sem_seg`` and
``seg_logits``); for a detector, mmdet's own mask head pastes the graph's per-box mask probabilities
into the original image and rescales the boxes (``FCNMaskHead.predict_by_feat``, which HTC's
``HTCMaskHead`` inherits, as ``CascadeRoIHead.predict_mask`` and ``HybridTaskCascadeRoIHead.predict_mask``
do), giving the same ``DetDataSample``. ``load_predictor`` returns it for
``.onnx`` files, so tools/infer.py and tools/serve.py run exported graphs unchanged.

What makes a graph unusable stops here with a :class:`PredictorError` that says what to do: no
``export.json`` beside the file, a file ONNX Runtime cannot read, a graph of another task or
number of classes than the config, a detector config asking for another ``test_cfg`` (score
threshold, hard or soft NMS settings, counts) than the one the graph holds, or (at predict time) an
input size outside the export's size policy (:mod:`swin_dense.deploy.record`).
"""
import threading
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from ..deploy.record import ExportRecord, ExportRecordError, check_input_size, frozen_test_cfg, read_record
from .predictor import TASK_NAMES, Predictor, PredictorError


def _session(path: str, device: str):
    """An ONNX Runtime session with as many threads as torch uses (``--threads`` / OMP_NUM_THREADS)."""
    import onnxruntime as ort
    providers = ['CPUExecutionProvider']
    if device.startswith('cuda'):
        if 'CUDAExecutionProvider' not in ort.get_available_providers():
            raise PredictorError(f'--device {device}: this onnxruntime has no CUDA provider '
                                 '(install onnxruntime-gpu, or use --device cpu)')
        providers.insert(0, 'CUDAExecutionProvider')
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    try:
        return ort.InferenceSession(path, sess_options=options, providers=providers)
    except Exception as e:  # noqa: BLE001  (onnxruntime raises its own pybind exception types)
        raise PredictorError(f'{path!r} is not an ONNX model ONNX Runtime can load ({type(e).__name__}: '
                             f'{str(e).strip()[:300]}); re-export it with tools/export_onnx.py') from None


class OnnxSegmentor:
    """The ``model`` of an :class:`OnnxPredictor` for segmentation: ``test_step`` as mmseg's
    ``EncoderDecoder`` in 'whole' mode, with the graph in place of ``encode_decode``."""

    def __init__(self, cfg: Any, session: Any, record: ExportRecord) -> None:
        from mmseg.models.segmentors.base import BaseSegmentor
        from mmseg.registry import MODELS
        self.data_preprocessor = MODELS.build(cfg.model.data_preprocessor)
        self.decode_head = MODELS.build(cfg.model.decode_head)  # threshold, align_corners, num_classes
        self.align_corners = self.decode_head.align_corners
        self.session, self.record = session, record
        self._postprocess = BaseSegmentor.postprocess_result

    def test_step(self, data: Dict[str, Any]) -> List[Any]:
        """Prepared batch (``pseudo_collate`` of pipeline outputs) -> ``SegDataSample`` per image."""
        data = self.data_preprocessor(data, False)
        inputs, samples = data['inputs'], data['data_samples']
        logits = []
        for image in inputs:
            check_input_size(self.record.size_policy, *image.shape[-2:],
                             hint='export a fixed-size graph for it with tools/export_onnx.py --shape H W, '
                                  'or resize inputs (docs/deploy.md)')
            out = self.session.run(None, {self.record.input_names[0]: image[None].numpy()})[0]
            logits.append(torch.from_numpy(out))
        return self._postprocess(self, torch.cat(logits), samples)


class OnnxDetector:
    """The ``model`` of an :class:`OnnxPredictor` for detection: ``test_step`` as mmdet's
    ``CascadeRCNN`` or ``HybridTaskCascade`` (``rescale=True``), with the graph
    (:mod:`swin_dense.deploy.detector`) in place of everything before pasting the masks."""

    def __init__(self, cfg: Any, session: Any, record: ExportRecord) -> None:
        from mmdet.models.detectors.base import BaseDetector
        from mmdet.registry import MODELS
        self.data_preprocessor = MODELS.build(cfg.model.data_preprocessor)
        roi_head = cfg.model.roi_head
        mask_head = roi_head.mask_head[-1] if isinstance(roi_head.mask_head, list) else roi_head.mask_head
        # the graph already picked each box's class channel: paste with a class-agnostic head
        self.mask_head = MODELS.build(dict(mask_head, class_agnostic=True))
        self.test_cfg = cfg.model.test_cfg.rcnn
        bbox_head = roi_head.bbox_head[-1] if isinstance(roi_head.bbox_head, list) else roi_head.bbox_head
        self.num_classes = bbox_head.num_classes
        self.session, self.record = session, record
        self._add_pred = BaseDetector.add_pred_to_datasample

    def test_step(self, data: Dict[str, Any]) -> List[Any]:
        """Prepared batch (``pseudo_collate`` of pipeline outputs) -> ``DetDataSample`` per image, with
        ``pred_instances`` (bboxes, scores, labels, masks) in the original image."""
        from mmengine.structures import InstanceData
        data = self.data_preprocessor(data, False)
        results = []
        for image, sample in zip(data['inputs'], data['data_samples']):
            check_input_size(self.record.size_policy, *image.shape[-2:],
                             hint='export a fixed-size graph for it with tools/export_onnx.py --shape H W, '
                                  'or resize inputs (docs/deploy.md)')
            feed = dict(zip(self.record.input_names, [image[None].numpy(), np.array(sample.img_shape, np.float32)]))
            boxes, scores, labels, masks = (torch.from_numpy(out) for out in self.session.run(None, feed))
            instances = InstanceData(bboxes=boxes, scores=scores, labels=labels)
            results += self.mask_head.predict_by_feat((masks[:, None],), [instances], [sample.metainfo],
                                                      self.test_cfg, rescale=True, activate_map=True)
        return self._add_pred(self, data['data_samples'], results)


class OnnxPredictor(Predictor):
    """:class:`Predictor` for an exported ``DIR/model.onnx`` (with ``DIR/export.json``).

    Args:
        config: the mmseg / mmdet config the graph was exported from (test pipeline, preprocessor, heads).
        checkpoint: path of ``model.onnx``.
        device: ``'cpu'`` or ``'cuda'`` / ``'cuda:N'`` (onnxruntime-gpu).
        cfg_options: config overrides, as ``--cfg-options`` of the other tools.
    """

    def __init__(self, config: str, checkpoint: str, device: str = 'cpu', cfg_options: Optional[Dict] = None):
        from mmengine.dataset import Compose

        cfg = self._read_config(config, checkpoint, device, cfg_options, 'ONNX model')
        try:
            record = read_record(checkpoint)
        except ExportRecordError as e:
            raise PredictorError(str(e)) from None
        if record.task != TASK_NAMES[self.task]:
            raise PredictorError(f'{checkpoint!r} is a {record.task} graph, {config!r} a {TASK_NAMES[self.task]} '
                                 'config: give the config it was exported from')
        if self.task == 'det':
            self._check_test_cfg(record, checkpoint, config)
        self.record = record
        runtime_model = OnnxSegmentor if self.task == 'seg' else OnnxDetector
        self.model = runtime_model(cfg, _session(checkpoint, device), record)
        self.num_classes = self.model.decode_head.num_classes if self.task == 'seg' else self.model.num_classes
        if len(record.classes) != self.num_classes:
            raise PredictorError(f'{checkpoint!r} has {len(record.classes)} classes, {config!r} '
                                 f'{self.num_classes}: give the config it was exported from')
        self.unused_weights: List[str] = []
        self.checkpoint_meta = dict(dataset_meta=dict(classes=record.classes, palette=record.palette))
        self.dataset_meta = self._dataset_meta(self.checkpoint_meta)
        self.classes = tuple(self.dataset_meta['classes'])
        self.pipeline_cfg, self.load_args = self._test_pipeline()
        self.pipeline = Compose(self.pipeline_cfg)
        self._visualizer = None
        self._vis_lock = threading.Lock()

    def _check_test_cfg(self, record: ExportRecord, checkpoint: str, config: str) -> None:
        """A detector graph holds its ``test_cfg`` as constants: refuse a config that asks for another."""
        exported, asked = record.exporter.get('test_cfg'), frozen_test_cfg(self.cfg)
        if exported != asked:
            raise PredictorError(f'{checkpoint!r} was exported with model.test_cfg={exported}, {config!r} '
                                 f'(with --cfg-options) gives {asked}: the graph holds its score threshold, NMS '
                                 'and counts as constants; pass the --cfg-options of the export, or re-export')

    def describe(self) -> Dict[str, Any]:
        """:meth:`Predictor.describe`, with the runtime and the export's size policy."""
        out = super().describe()
        out.update(model=self.cfg.model.get('type'), runtime='onnxruntime',
                   size_policy=self.record.size_policy.describe())
        return out


__all__ = ['OnnxPredictor', 'OnnxSegmentor', 'OnnxDetector']
