"""One loaded model, ready to predict on decoded images: :class:`Predictor`.

What mmdet's ``DetInferencer`` / ``init_detector`` and mmseg's ``MMSegInferencer`` / ``init_model``
do, with the parts the batch tool and the server need on top:

* the checkpoint is read by the package's one safe reader (:func:`swin_dense.checkpoint.read_checkpoint`,
  ``torch.load(weights_only=True)``) and checked against the model with its one fit check
  (:func:`swin_dense.checkpoint.fit_state_dict`) *before* anything runs: a checkpoint of another
  model (a detector for a segmentation config, another width or number of classes, a backbone-only
  file) stops with a message that says which weights are missing or have another shape, instead of
  a warning and a randomly initialised model;
* class names and palette come from the checkpoint's ``meta.dataset_meta`` when it fits the
  model's number of classes, else from the config's test dataset ``metainfo``, else from the
  dataset class (mmdet's inferencer would fall back to the 80 COCO classes);
* the config's own test pipeline is used (minus annotation loading), fed with images decoded as
  its ``LoadImageFromFile`` would (:func:`swin_dense.inference.inputs.decode_image`), so results
  equal ``tools/test.py``'s;
* :meth:`Predictor.predict` runs a list of prepared images either as one batch (padded to the
  largest, as the test dataloader does) or grouped by padded input size (``bucketed=True``), so
  that a result does not depend on the other images of the batch.

Drawing uses the config's visualizer (mmdet's ``DetLocalVisualizer`` / mmseg's
``SegLocalVisualizer``).
"""
import copy
import os.path as osp
import threading
from datetime import datetime
from typing import Any, Dict, Hashable, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..checkpoint import CheckpointError, fit_state_dict, read_checkpoint, short_keys
from ..engine import safe_load
from .inference_mode import to_inference_mode

TASK_NAMES = {'det': 'detection', 'seg': 'segmentation'}
_ANNOTATION_LOADERS = ('LoadAnnotations', 'LoadPanopticAnnotations', 'LoadDepthAnnotation')


class PredictorError(RuntimeError):
    """The config / checkpoint pair cannot be used; the message says why."""


class CheckpointMismatchError(PredictorError):
    """The checkpoint's weights do not fit the model the config builds."""


def _type_name(transform: Dict) -> str:
    t = transform.get('type', '')
    return (t if isinstance(t, str) else getattr(t, '__name__', str(t))).split('.')[-1]


def _unwrap_dataset(ds: Dict) -> Dict:
    while isinstance(ds, dict) and 'pipeline' not in ds and isinstance(ds.get('dataset'), dict):
        ds = ds['dataset']
    return ds


def read_state_dict(path: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """(state_dict, meta) of a detector / segmentor checkpoint, read by :func:`swin_dense.checkpoint.read_checkpoint`.

    Raises:
        PredictorError: the reader's message: no such file, not a readable checkpoint, a Python object
            ``torch.load(weights_only=True)`` refuses (named by type), or no state dict of tensors.
    """
    if not osp.isfile(path):
        raise PredictorError(f'checkpoint {path!r} not found')
    try:
        with safe_load.allowed():  # the mmengine types of our own training checkpoints, for this read only
            return read_checkpoint(path)
    except CheckpointError as e:
        raise PredictorError(str(e)) from None


def check_state_dict(model: torch.nn.Module, state: Dict[str, torch.Tensor], checkpoint: str,
                     config: str) -> List[str]:
    """Raise :class:`CheckpointMismatchError` unless every model weight is in ``state`` with its shape.

    Returns:
        the checkpoint keys the model does not use (reported as a warning by the caller).
    """
    own = model.state_dict()
    fit = fit_state_dict(state, own)
    if fit.missing or fit.mismatched:
        parts = []
        if fit.missing:
            parts.append(f'{len(fit.missing)} of the model\'s {len(own)} weights are missing from it '
                         f'(e.g. {short_keys(fit.missing, 3)})')
        if fit.mismatched:
            parts.append(f'{len(fit.mismatched)} have another shape (e.g. {short_keys(fit.mismatched, 2)})')
        if fit.unexpected:
            parts.append(f'{len(fit.unexpected)} of its weights are unknown to the model '
                         f'(e.g. {short_keys(fit.unexpected, 3)})')
        hint = ''
        own_parts = sorted({k.split('.')[0] for k in own})
        ckpt_parts = sorted({k.split('.')[0] for k in state})
        if own_parts != ckpt_parts:
            hint += (f' The checkpoint has the parts {", ".join(ckpt_parts)}; the model has '
                     f'{", ".join(own_parts)}.')
        if fit.none_present:
            hint += (' None of the weights match: is it a checkpoint of another kind of model (a detector for a '
                     'segmentation config, or a backbone-only pre-training checkpoint)?')
        raise CheckpointMismatchError(f'checkpoint {checkpoint!r} does not match config {config!r}: '
                                      + '; '.join(parts) + '.' + hint)
    return fit.unexpected


def build_model(cfg: Any, task: str) -> torch.nn.Module:
    """The model of a read config (``'det'`` or ``'seg'`` ``task``), without pretrained initialisation (a
    checkpoint gives every weight) or training settings, with SyncBN as BN, in training mode."""
    from mmengine.model.utils import revert_sync_batchnorm
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.pop('pretrained', None)
    model_cfg['train_cfg'] = None
    if isinstance(model_cfg.get('backbone'), dict):
        model_cfg['backbone']['init_cfg'] = None
    if task == 'seg':
        from mmseg.registry import MODELS
    else:
        from mmdet.registry import MODELS
    return revert_sync_batchnorm(MODELS.build(model_cfg))


def _num_classes(model: torch.nn.Module, task: str) -> Optional[int]:
    if task == 'seg':
        head = getattr(model, 'decode_head', None)
        return getattr(head, 'num_classes', None)
    roi_head = getattr(model, 'roi_head', None)
    if roi_head is not None and hasattr(roi_head, 'bbox_head'):
        head = roi_head.bbox_head
        if isinstance(head, (torch.nn.ModuleList, list, tuple)):
            head = head[-1]
        return getattr(head, 'num_classes', None)
    for name in ('bbox_head', 'mask_head', 'decode_head'):
        head = getattr(model, name, None)
        if head is not None and hasattr(head, 'num_classes'):
            return head.num_classes
    return None


def _palette(n: int) -> List[Tuple[int, int, int]]:
    rng = np.random.RandomState(42)
    return [tuple(int(c) for c in rng.randint(0, 256, 3)) for _ in range(n)]


class Predictor:
    """A model built from a config and checkpoint, with its test pipeline and visualizer.

    Args:
        config: mmdet or mmseg config file (its ``default_scope`` picks the task).
        checkpoint: a full detector / segmentor checkpoint (``state_dict`` + optional ``meta``).
        device: ``'cpu'``, ``'cuda'`` or ``'cuda:N'``.
        cfg_options: config overrides, as ``--cfg-options`` of the other tools.
        inference_mode: on the CPU, set the model up for speed without changing its results
            (:mod:`.inference_mode`: conv-BN folding, torchvision's RoIAlign, channels-last RoI heads);
            False runs it as built.
    """

    inference_mode: Tuple[str, ...] = ()  # what :mod:`.inference_mode` changed in the model

    def __init__(self, config: str, checkpoint: str, device: str = 'cpu', cfg_options: Optional[Dict] = None,
                 inference_mode: bool = True):
        import warnings
        warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
        from mmengine.dataset import Compose

        if device.startswith('cuda') and not torch.cuda.is_available():
            raise PredictorError(f'--device {device}: CUDA is not available here (use --device cpu)')
        cfg = self._read_config(config, checkpoint, device, cfg_options, 'checkpoint')

        state, meta = read_state_dict(checkpoint)  # first: an unreadable file fails before the model is built
        model = build_model(cfg, self.task)
        self.unused_weights = check_state_dict(model, state, checkpoint, config)
        model.load_state_dict(state, strict=False)
        self.checkpoint_meta = meta
        model.to(device).eval()
        if inference_mode and device == 'cpu':
            self.inference_mode = tuple(to_inference_mode(model))
        self.model = model
        self.num_classes = _num_classes(model, self.task)
        self.dataset_meta = self._dataset_meta(meta)
        self.classes: Tuple[str, ...] = tuple(self.dataset_meta['classes'])
        model.dataset_meta = self.dataset_meta

        self.pipeline_cfg, self.load_args = self._test_pipeline()
        self.pipeline = Compose(self.pipeline_cfg)
        self._visualizer = None
        self._vis_lock = threading.Lock()

    # ------------------------------------------------------------------------------ setup helpers
    def _read_config(self, config: str, checkpoint: str, device: str, cfg_options: Optional[Dict], what: str):
        """Check that both files exist, read the config with ``cfg_options`` and register its scope.

        Sets ``task``, ``cfg``, ``config``, ``checkpoint`` and ``device``; ``what`` names the checkpoint
        in errors ('checkpoint', 'ONNX model'). Returns the config.
        """
        from mmengine.config import Config
        from mmengine.registry import init_default_scope

        from swin_dense.cli import merge_cfg_options, setup_scope

        if not osp.isfile(config):
            raise PredictorError(f'config {config!r} not found')
        if not osp.isfile(checkpoint):
            raise PredictorError(f'{what} {checkpoint!r} not found')
        try:
            cfg = Config.fromfile(config)
        except Exception as e:  # noqa: BLE001
            raise PredictorError(f'config {config!r} cannot be read ({type(e).__name__}: {e})') from None
        merge_cfg_options(cfg, cfg_options)
        self.task = setup_scope(cfg)
        init_default_scope(cfg.default_scope)
        self.cfg, self.config, self.checkpoint, self.device = cfg, config, checkpoint, device
        return cfg

    def _dataset_meta(self, ckpt_meta: Dict) -> Dict[str, Any]:
        """Classes and palette: checkpoint meta, config metainfo, dataset class; the first that fits."""
        candidates = []
        if isinstance(ckpt_meta.get('dataset_meta'), dict):
            candidates.append(('checkpoint meta', ckpt_meta['dataset_meta']))
        ds = _unwrap_dataset(self.cfg.get('test_dataloader', {}).get('dataset', {}))
        if isinstance(ds.get('metainfo'), dict):
            candidates.append(('config metainfo', dict(ds['metainfo'])))
        if ds.get('type'):
            from mmengine.registry import DATASETS
            try:
                cls = DATASETS.get(ds['type'])
                if cls is not None and isinstance(getattr(cls, 'METAINFO', None), dict):
                    candidates.append((f'{cls.__name__}.METAINFO', dict(cls.METAINFO)))
            except Exception:  # noqa: BLE001
                pass
        chosen = None
        for source, meta in candidates:
            classes = meta.get('classes')
            if classes and (self.num_classes is None or len(classes) == self.num_classes):
                chosen = (source, meta)
                break
        if chosen is None:
            n = self.num_classes or 1
            chosen = ('generated', {'classes': tuple(f'class_{i}' for i in range(n))})
        source, meta = chosen
        classes = tuple(str(c) for c in meta['classes'])
        palette = meta.get('palette')
        if not palette or len(palette) < len(classes):
            palette = _palette(len(classes))
        out = dict(meta)
        out.update(classes=classes, palette=[tuple(int(c) for c in p) for p in palette[:len(classes)]])
        self.classes_source = source
        return out

    def _test_pipeline(self) -> Tuple[List[Dict], Dict[str, Any]]:
        ds = _unwrap_dataset(self.cfg.get('test_dataloader', {}).get('dataset', {}))
        if 'pipeline' not in ds:
            raise PredictorError(f'config {self.config!r} has no test_dataloader.dataset.pipeline')
        pipeline = [copy.deepcopy(dict(t)) for t in ds['pipeline'] if _type_name(t) not in _ANNOTATION_LOADERS]
        idx = [i for i, t in enumerate(pipeline) if _type_name(t) == 'LoadImageFromFile']
        if not idx:
            raise PredictorError(f'config {self.config!r}: no LoadImageFromFile in the test pipeline')
        load = pipeline[idx[0]]
        load_args = dict(color_type=load.get('color_type', 'color'),
                         imdecode_backend=load.get('imdecode_backend', 'cv2'))
        pipeline[idx[0]] = dict(type='LoadImageFromNDArray', to_float32=bool(load.get('to_float32', False)))
        return pipeline, load_args

    # ---------------------------------------------------------------------------------- running
    def decode(self, data: bytes, name: str, max_pixels: Optional[int] = None) -> np.ndarray:
        """Encoded bytes -> BGR array, as the config's LoadImageFromFile (raises ImageError)."""
        from .inputs import decode_image
        return decode_image(data, name, max_pixels=max_pixels, **self.load_args)

    def read(self, path: str, max_pixels: Optional[int] = None, max_bytes: Optional[int] = None) -> np.ndarray:
        """A regular image file -> BGR array, as :meth:`decode` (raises ImageError)."""
        from .inputs import MAX_FILE_BYTES, read_image
        return read_image(path, max_pixels=max_pixels, max_bytes=max_bytes or MAX_FILE_BYTES, **self.load_args)

    def prepare(self, img: np.ndarray) -> Dict[str, Any]:
        """Run the test pipeline (resize, pack) on one decoded image."""
        return self.pipeline(dict(img=img, img_id=0))

    def bucket_key(self, data: Dict[str, Any]) -> Hashable:
        """The padded input size the data preprocessor will give this image in a batch of one."""
        _, h, w = data['inputs'].shape
        pre = self.model.data_preprocessor
        if self.task == 'det':
            d = int(getattr(pre, 'pad_size_divisor', 1) or 1)
            return (-(-h // d) * d, -(-w // d) * d)
        test_cfg = getattr(pre, 'test_cfg', None) or {}
        if test_cfg.get('size'):
            return tuple(test_cfg['size'])
        d = int(test_cfg.get('size_divisor') or 1)
        return (-(-h // d) * d, -(-w // d) * d)

    def predict(self, datas: Sequence[Dict[str, Any]], bucketed: bool = False) -> List[Any]:
        """Predictions (data samples on the CPU) for prepared images, in their order.

        Args:
            bucketed: run images of one padded size together, so that no image is padded for the
                sake of another (results then equal those of batches of one, up to float rounding).
                Segmentation always groups (mmseg's preprocessor needs equal sizes in a batch);
                otherwise detection batches are padded to their largest image, as in tools/test.py.
        """
        from mmengine.dataset import pseudo_collate
        if not datas:
            return []
        if bucketed or self.task == 'seg':
            groups: Dict[Hashable, List[int]] = {}
            for i, d in enumerate(datas):
                groups.setdefault(self.bucket_key(d) if bucketed else tuple(d['inputs'].shape), []).append(i)
        else:
            groups = {None: list(range(len(datas)))}
        out: List[Any] = [None] * len(datas)
        with torch.no_grad():
            for idx in groups.values():
                results = self.model.test_step(pseudo_collate([datas[i] for i in idx]))
                for i, r in zip(idx, results):
                    out[i] = r.cpu()
        return out

    # ---------------------------------------------------------------------------------- drawing
    @property
    def visualizer(self):
        if self._visualizer is None:
            vis_cfg = copy.deepcopy(self.cfg.get('visualizer') or {})
            if not vis_cfg:
                vis_cfg = dict(type='SegLocalVisualizer' if self.task == 'seg' else 'DetLocalVisualizer')
            vis_cfg['name'] = f'swin_dense_infer_{id(self)}_{datetime.now().timestamp()}'
            vis_cfg['vis_backends'] = None
            vis_cfg.pop('save_dir', None)
            if self.task == 'seg':
                from mmseg.registry import VISUALIZERS
                vis = VISUALIZERS.build(vis_cfg)
                vis.set_dataset_meta(classes=list(self.classes),
                                     palette=[list(p) for p in self.dataset_meta['palette']])
            else:
                from mmdet.registry import VISUALIZERS
                vis = VISUALIZERS.build(vis_cfg)
                vis.dataset_meta = self.dataset_meta
            self._visualizer = vis
        return self._visualizer

    def draw(self, img_bgr: np.ndarray, sample: Any, score_thr: float = 0.3) -> np.ndarray:
        """The prediction drawn over the image (BGR, the image's size)."""
        rgb = np.ascontiguousarray(img_bgr[..., ::-1])
        with self._vis_lock:
            vis = self.visualizer
            if self.task == 'seg':
                vis.add_datasample('image', rgb, data_sample=sample, draw_gt=False, show=False, with_labels=True)
            else:
                vis.add_datasample('image', rgb, data_sample=sample, draw_gt=False, show=False,
                                   pred_score_thr=score_thr)
            drawn = vis.get_image()
        return np.ascontiguousarray(drawn[..., ::-1])

    # ---------------------------------------------------------------------------------- metadata
    def describe(self) -> Dict[str, Any]:
        backbone = self.cfg.model.get('backbone', {}) or {}
        return dict(
            task=TASK_NAMES[self.task],
            model=type(self.model).__name__,
            backbone=backbone.get('type') if isinstance(backbone, dict) else None,
            config=osp.basename(self.config),
            checkpoint=osp.basename(self.checkpoint),
            device=str(self.device),
            classes=list(self.classes),
            classes_from=self.classes_source,
            palette=[list(p) for p in self.dataset_meta['palette']],
            runtime='pytorch',
            inference_mode=list(self.inference_mode),
        )

    def runtime_summary(self) -> str:
        """The runtime in words, for start-up lines: e.g. ``'pytorch, inference mode: conv-BN folding (12
        BatchNorms)'``, ``'pytorch, as built'`` or ``'onnxruntime'``."""
        info = self.describe()
        if info['runtime'] != 'pytorch':
            return info['runtime']
        changes = info['inference_mode']
        return 'pytorch, ' + (f'inference mode: {", ".join(changes)}' if changes else 'as built')


__all__ = ['Predictor', 'PredictorError', 'CheckpointMismatchError', 'read_state_dict', 'check_state_dict',
           'TASK_NAMES']
