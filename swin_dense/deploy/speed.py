"""Whole-model speed: PyTorch eager against the exported graph in ONNX Runtime, with the same random
input, in the current thread settings (tools/bench_onnx.py sets one thread). Segmentor: mmseg's
``encode_decode`` against the graph. Detector: the predictors' ``test_step`` on one image
(preprocessing, mmdet's ``predict`` with mask pasting, against the graph plus mmdet's mask pasting, as
tools/infer.py runs them). Each size gets its own graph: a dynamic one where the size is inside its
policy, else one fixed at that size."""
import statistics
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..inference.predictor import Predictor
from .export import ONNX_NAME, export_onnx
from .graphs import SegmentorGraph
from .record import ExportRecord


@dataclass
class SpeedRow:
    """Seconds per image (min and median over the repeats) of eager PyTorch and ONNX Runtime at one size."""
    size: Tuple[int, int]
    graph: str
    eager_min: float
    eager_median: float
    onnx_min: float
    onnx_median: float
    max_abs_diff: float

    @property
    def speedup(self) -> float:
        """Eager over ONNX Runtime, medians."""
        return self.eager_median / self.onnx_median


def _times(fn: Callable[[], object], repeats: int) -> List[float]:
    fn()  # warm-up: caches, allocator, ORT's first-run optimisations
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def _graph_for(config: str, checkpoint: str, folder: str, dynamic: ExportRecord, size: Tuple[int, int],
               cfg_options: Optional[Dict]) -> str:
    """The ``model.onnx`` to run at ``size``: the dynamic one when its policy allows it, else one exported
    for that size into ``folder``."""
    if dynamic.size_policy.allows(*size):
        return f'{folder}/dynamic/{ONNX_NAME}'
    fixed = f'{folder}/fixed_{size[0]}x{size[1]}'
    export_onnx(config, checkpoint, fixed, shape=size, cfg_options=cfg_options)
    return f'{fixed}/{ONNX_NAME}'


def measure_segmentor(config: str, checkpoint: str, sizes: Sequence[Tuple[int, int]],
                      repeats: int = 5, cfg_options: Optional[Dict] = None) -> List[SpeedRow]:
    """One :class:`SpeedRow` per (H, W) in ``sizes``; the difference is the largest logit difference."""
    import onnxruntime as ort
    predictor = Predictor(config, checkpoint, cfg_options=cfg_options)
    graph = SegmentorGraph(predictor.model).eval()
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        dynamic = export_onnx(config, checkpoint, f'{tmp}/dynamic', cfg_options=cfg_options)
        for size in sizes:
            path = _graph_for(config, checkpoint, tmp, dynamic, size, cfg_options)
            session = ort.InferenceSession(path, sess_options=options, providers=['CPUExecutionProvider'])
            x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(0))
            with torch.no_grad():
                eager = _times(lambda: graph(x), repeats)
                ref = graph(x).numpy()
            feed = {dynamic.input_names[0]: x.numpy()}
            onnx = _times(lambda: session.run(None, feed), repeats)
            diff = float(np.abs(session.run(None, feed)[0] - ref).max())
            rows.append(SpeedRow(tuple(size), 'dynamic' if dynamic.size_policy.allows(*size) else 'fixed',
                                 min(eager), statistics.median(eager), min(onnx), statistics.median(onnx), diff))
    return rows


def _detection_batch(size: Tuple[int, int]) -> Dict:
    """A prepared batch of one random (H, W) image, as the test pipeline packs it (no resize)."""
    from mmdet.structures import DetDataSample
    image = torch.randint(0, 256, (3, *size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    meta = dict(img_shape=tuple(size), ori_shape=tuple(size), scale_factor=(1., 1.))
    return dict(inputs=[image], data_samples=[DetDataSample(metainfo=meta)])


def measure_detector(config: str, checkpoint: str, sizes: Sequence[Tuple[int, int]],
                     repeats: int = 5, cfg_options: Optional[Dict] = None) -> List[SpeedRow]:
    """One :class:`SpeedRow` per (H, W) in ``sizes`` (multiples of the preprocessor's padding); the
    difference is the largest box coordinate difference (px) between the runs' detections in score
    order, inf when they differ in number."""
    from ..inference.onnx_predictor import OnnxPredictor
    predictor = Predictor(config, checkpoint, cfg_options=cfg_options)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        dynamic = export_onnx(config, checkpoint, f'{tmp}/dynamic', cfg_options=cfg_options)
        for size in sizes:
            onnx_predictor = OnnxPredictor(config, _graph_for(config, checkpoint, tmp, dynamic, size, cfg_options),
                                           cfg_options=cfg_options)
            batch = _detection_batch(size)
            with torch.no_grad():
                eager = _times(lambda: predictor.model.test_step(batch), repeats)
                ref = predictor.model.test_step(batch)[0].pred_instances.bboxes
            onnx = _times(lambda: onnx_predictor.model.test_step(batch), repeats)
            got = onnx_predictor.model.test_step(batch)[0].pred_instances.bboxes
            diff = float((got - ref).abs().max()) if got.shape == ref.shape else float('inf')
            rows.append(SpeedRow(tuple(size), 'dynamic' if dynamic.size_policy.allows(*size) else 'fixed',
                                 min(eager), statistics.median(eager), min(onnx), statistics.median(onnx), diff))
    return rows


def speed_table(rows: Sequence[SpeedRow], diff_name: str) -> str:
    """A Markdown table of the rows; ``diff_name`` heads the difference column."""
    lines = ['| input (H x W) | graph | eager min / median (s) | ONNX Runtime min / median (s) | speed-up (medians) '
             f'| {diff_name} |', '|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f'| {r.size[0]} x {r.size[1]} | {r.graph} | {r.eager_min:.3f} / {r.eager_median:.3f} '
                     f'| {r.onnx_min:.3f} / {r.onnx_median:.3f} | {r.speedup:.2f}x | {r.max_abs_diff:.1e} |')
    return '\n'.join(lines)
