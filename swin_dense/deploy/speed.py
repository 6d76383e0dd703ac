"""Whole-model speed: PyTorch eager (the model as built) against PyTorch inference mode
(:mod:`swin_dense.inference.inference_mode`) and the exported graph in ONNX Runtime, with the same
random input, in the current thread settings (tools/bench_onnx.py sets one thread).

Segmentor: mmseg's ``encode_decode`` of both PyTorch models against the graph. Detector: the
predictors' ``test_step`` on one image (preprocessing, mmdet's ``predict`` with mask pasting, against
the graph plus mmdet's mask pasting, as tools/infer.py runs them). Every size runs on one dynamic graph.
"""
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

RUNTIMES = ('eager', 'inference_mode', 'onnxruntime')


@dataclass
class SpeedRow:
    """Seconds per image at one size: (min, median) over the repeats for each of :data:`RUNTIMES`, and
    each faster runtime's largest output difference to eager (logits, or box coordinates in px)."""
    size: Tuple[int, int]
    seconds: Dict[str, Tuple[float, float]]
    max_abs_diff: Dict[str, float]

    def speedup(self, runtime: str) -> float:
        """Eager over ``runtime``, medians."""
        return self.seconds['eager'][1] / self.seconds[runtime][1]


def _times(fn: Callable[[], object], repeats: int) -> Tuple[float, float]:
    """(min, median) seconds of ``repeats`` calls after one warm-up (caches, allocator, ORT's first-run
    optimisations)."""
    fn()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return min(out), statistics.median(out)


def _session(path: str):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    return ort.InferenceSession(path, sess_options=options, providers=['CPUExecutionProvider'])


def measure_segmentor(config: str, checkpoint: str, sizes: Sequence[Tuple[int, int]],
                      repeats: int = 5, cfg_options: Optional[Dict] = None) -> List[SpeedRow]:
    """One :class:`SpeedRow` per (H, W) in ``sizes``; the differences are the largest logit differences."""
    eager = SegmentorGraph(Predictor(config, checkpoint, cfg_options=cfg_options, inference_mode=False).model)
    fast = SegmentorGraph(Predictor(config, checkpoint, cfg_options=cfg_options).model)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        record = export_onnx(config, checkpoint, tmp, cfg_options=cfg_options)
        session = _session(f'{tmp}/{ONNX_NAME}')
        for size in sizes:
            x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(0))
            feed = {record.input_names[0]: x.numpy()}
            with torch.no_grad():
                seconds = dict(eager=_times(lambda: eager(x), repeats), inference_mode=_times(lambda: fast(x), repeats))
                ref, got = eager(x).numpy(), fast(x).numpy()
            seconds['onnxruntime'] = _times(lambda: session.run(None, feed), repeats)
            diff = dict(inference_mode=float(np.abs(got - ref).max()),
                        onnxruntime=float(np.abs(session.run(None, feed)[0] - ref).max()))
            rows.append(SpeedRow(tuple(size), seconds, diff))
    return rows


def _detection_batch(size: Tuple[int, int]) -> Dict:
    """A prepared batch of one random (H, W) image, as the test pipeline packs it (no resize)."""
    from mmdet.structures import DetDataSample
    image = torch.randint(0, 256, (3, *size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    meta = dict(img_shape=tuple(size), ori_shape=tuple(size), scale_factor=(1., 1.))
    return dict(inputs=[image], data_samples=[DetDataSample(metainfo=meta)])


def _box_diff(got: torch.Tensor, ref: torch.Tensor) -> float:
    """Largest box coordinate difference of two runs' detections in score order; inf when their numbers differ."""
    if got.shape != ref.shape:
        return float('inf')
    return float((got - ref).abs().max()) if len(ref) else 0.0


def measure_detector(config: str, checkpoint: str, sizes: Sequence[Tuple[int, int]],
                     repeats: int = 5, cfg_options: Optional[Dict] = None) -> List[SpeedRow]:
    """One :class:`SpeedRow` per (H, W) in ``sizes`` (multiples of the preprocessor's padding); the
    differences are the largest box coordinate differences (px)."""
    from ..inference.onnx_predictor import OnnxPredictor
    models = dict(eager=Predictor(config, checkpoint, cfg_options=cfg_options, inference_mode=False).model,
                  inference_mode=Predictor(config, checkpoint, cfg_options=cfg_options).model)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(config, checkpoint, tmp, cfg_options=cfg_options)
        models['onnxruntime'] = OnnxPredictor(config, f'{tmp}/{ONNX_NAME}', cfg_options=cfg_options).model
        for size in sizes:
            batch = _detection_batch(size)
            seconds, boxes = {}, {}
            for runtime in RUNTIMES:
                with torch.no_grad():
                    seconds[runtime] = _times(lambda: models[runtime].test_step(batch), repeats)
                    boxes[runtime] = models[runtime].test_step(batch)[0].pred_instances.bboxes
            diff = {runtime: _box_diff(boxes[runtime], boxes['eager']) for runtime in RUNTIMES[1:]}
            rows.append(SpeedRow(tuple(size), seconds, diff))
    return rows


def speed_table(rows: Sequence[SpeedRow], diff_name: str) -> str:
    """A Markdown table of the rows; ``diff_name`` names the differences (e.g. 'logit', 'box (px)')."""
    lines = ['| input (H x W) | eager min / median (s) | inference mode min / median (s) | speed-up '
             '| ONNX Runtime min / median (s) | speed-up | max abs ' + diff_name + ' diff (inference mode / ORT) |',
             '|---|---|---|---|---|---|---|']
    for r in rows:
        cells = [f'{r.size[0]} x {r.size[1]}']
        for runtime in RUNTIMES:
            cells.append('{:.3f} / {:.3f}'.format(*r.seconds[runtime]))
            if runtime != 'eager':
                cells.append(f'{r.speedup(runtime):.2f}x')
        cells.append(f'{r.max_abs_diff["inference_mode"]:.1e} / {r.max_abs_diff["onnxruntime"]:.1e}')
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)
