"""Whole-model speed of a segmentor: PyTorch eager (``encode_decode``, as the Predictor runs it)
against its exported graph in ONNX Runtime, with the same random input, in the current thread
settings (tools/bench_onnx.py sets one thread). Each size gets its own graph: a dynamic one where
the size is inside its policy, else one fixed at that size."""
import statistics
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, List, Sequence, Tuple

import numpy as np
import torch

from ..inference.predictor import Predictor
from .export import export_onnx
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


def measure_segmentor(config: str, checkpoint: str, sizes: Sequence[Tuple[int, int]],
                      repeats: int = 5) -> List[SpeedRow]:
    """One :class:`SpeedRow` per (H, W) in ``sizes``."""
    import onnxruntime as ort
    predictor = Predictor(config, checkpoint)
    graph = SegmentorGraph(predictor.model).eval()
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        dynamic = export_onnx(config, checkpoint, f'{tmp}/dynamic')
        for size in sizes:
            record: ExportRecord = dynamic
            folder = f'{tmp}/dynamic'
            if not dynamic.size_policy.allows(*size):
                folder = f'{tmp}/fixed_{size[0]}x{size[1]}'
                record = export_onnx(config, checkpoint, folder, shape=size)
            session = ort.InferenceSession(f'{folder}/model.onnx', sess_options=options,
                                           providers=['CPUExecutionProvider'])
            x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(0))
            with torch.no_grad():
                eager = _times(lambda: graph(x), repeats)
                ref = graph(x).numpy()
            feed = {record.input_names[0]: x.numpy()}
            onnx = _times(lambda: session.run(None, feed), repeats)
            diff = float(np.abs(session.run(None, feed)[0] - ref).max())
            rows.append(SpeedRow(tuple(size), record.size_policy.kind, min(eager), statistics.median(eager),
                                 min(onnx), statistics.median(onnx), diff))
    return rows


def speed_table(rows: Sequence[SpeedRow]) -> str:
    """A Markdown table of the rows."""
    lines = ['| input (H x W) | graph | eager min / median (s) | ONNX Runtime min / median (s) | speed-up (medians) '
             '| max abs logit diff |', '|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f'| {r.size[0]} x {r.size[1]} | {r.graph} | {r.eager_min:.3f} / {r.eager_median:.3f} '
                     f'| {r.onnx_min:.3f} / {r.onnx_median:.3f} | {r.speedup:.2f}x | {r.max_abs_diff:.1e} |')
    return '\n'.join(lines)
