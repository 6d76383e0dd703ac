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
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..inference.predictor import Predictor, build_model
from .export import ONNX_NAME, export_onnx
from .graphs import SegmentorGraph

RUNTIMES = ('eager', 'inference_mode', 'onnxruntime')


def random_checkpoint(config: str, path: str, seed: int = 0, cfg_options: Optional[Dict] = None) -> str:
    """Write a checkpoint of ``config``'s model with its own random initialisation (``init_weights``,
    seeded; no pretrained weights) to ``path``, for timing without a trained model. Returns ``path``."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from ..cli import merge_cfg_options, setup_scope
    cfg = Config.fromfile(config)
    merge_cfg_options(cfg, cfg_options)
    task = setup_scope(cfg)
    init_default_scope(cfg.default_scope)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build_model(cfg, task)
        model.init_weights()
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return path


@dataclass
class ConvBound:
    """Where eager time goes at one size: the share in convolutions and their rate, against this
    thread's fp32 matrix-product rate, and what that leaves any runtime that computes the same
    convolutions directly (not by Winograd or FFT, which trade multiplications for other rounding)."""
    size: Tuple[int, int]
    seconds: float
    conv_share: float
    conv_gflops: float
    matmul_gflops: float

    @property
    def best_speedup(self) -> float:
        """Eager over a runtime that ran everything but the convolutions in no time and the convolutions
        at the matrix-product rate (or their own, if higher): an upper bound for the same arithmetic."""
        return 1.0 / (self.conv_share * min(1.0, self.conv_gflops / self.matmul_gflops))


@dataclass
class WinogradLayer:
    """One :class:`~swin_dense.inference.winograd.WinogradConv2d` of an inference-mode model, on the input
    it got at one image size: the algorithm it ran, and each algorithm's time on that input (ms, fastest
    of the repeats) and largest error against the float64 convolution, over the largest float64 output.
    ``ms`` and ``error`` are keyed by :data:`~swin_dense.inference.winograd.ALGORITHMS` (NNPACK's only
    where PyTorch has it)."""
    size: Tuple[int, int]
    name: str
    shape: Tuple[int, ...]
    algorithm: str
    ms: Dict[str, float]
    error: Dict[str, float]


@dataclass
class SpeedRow:
    """Seconds per image at one size: (min, median) over the repeats for each of :data:`RUNTIMES`, each
    faster runtime's largest output difference to eager (logits, or box coordinates in px), and with
    profiling the eager run's :class:`ConvBound` and the inference-mode model's :class:`WinogradLayer` s."""
    size: Tuple[int, int]
    seconds: Dict[str, Tuple[float, float]]
    max_abs_diff: Dict[str, float]
    bound: Optional[ConvBound] = None
    winograd: List[WinogradLayer] = field(default_factory=list)

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


def matmul_gflops(n: int = 2048, repeats: int = 3) -> float:
    """fp32 GFLOP/s of an (n x n) @ (n x n) product in the current thread settings (fastest of ``repeats``)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n ** 3 / _times(lambda: a @ b, repeats)[0] / 1e9


def conv_bound(model: torch.nn.Module, fn: Callable[[], object], size: Tuple[int, int],
               matmul_rate: float) -> ConvBound:
    """Time one call of ``fn`` and, by forward hooks on every ``nn.Conv2d`` of ``model``, the time spent
    in those convolutions and their FLOPs (2 x output elements x input channels per group x kernel
    area). Hooks instead of ``torch.profiler``, whose per-op overhead inflates the rest of the call."""
    spent, flops, starts = [0.0], [0], {}

    def before(module: torch.nn.Module, inputs: tuple) -> None:
        starts[id(module)] = time.perf_counter()

    def after(module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        spent[0] += time.perf_counter() - starts.pop(id(module))
        kh, kw = module.kernel_size
        flops[0] += 2 * output.numel() * module.in_channels // module.groups * kh * kw

    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    handles = [h for m in convs for h in (m.register_forward_pre_hook(before), m.register_forward_hook(after))]
    try:
        fn()  # warm-up
        spent[0], flops[0] = 0.0, 0
        start = time.perf_counter()
        fn()
        total = time.perf_counter() - start
    finally:
        for handle in handles:
            handle.remove()
    return ConvBound(tuple(size), total, spent[0] / total, flops[0] / spent[0] / 1e9 if spent[0] else 0.0,
                     matmul_rate)


def _algorithm_times(layer: torch.nn.Module, x: torch.Tensor,
                     repeats: int) -> Tuple[Dict[str, float], Dict[str, float]]:
    """Each algorithm of the ``WinogradConv2d`` ``layer`` on ``x``: ms (fastest of ``repeats``) and the
    largest error against the float64 convolution over its largest output (:class:`WinogradLayer`)."""
    import torch.nn.functional as F

    from ..inference.winograd import ALGORITHMS, nnpack_available
    ref = F.conv2d(x.double(), layer.weight.double(), None if layer.bias is None else layer.bias.double(),
                   padding=layer.padding)
    scale = float(ref.abs().max()) or 1.0
    runs = {a: getattr(layer, a) for a in ALGORITHMS if a != 'nnpack' or nnpack_available()}
    return ({a: 1e3 * _times(lambda: run(x), repeats)[0] for a, run in runs.items()},
            {a: float((run(x).double() - ref).abs().max()) / scale for a, run in runs.items()})


def winograd_layers(model: torch.nn.Module, fn: Callable[[], object], size: Tuple[int, int],
                    repeats: int = 3) -> List[WinogradLayer]:
    """Call ``fn`` once, keep the input each ``WinogradConv2d`` of ``model`` got, and measure every
    algorithm on it (:class:`WinogradLayer`), whichever the layer picks for that input."""
    from ..inference.winograd import WinogradConv2d
    inputs: Dict[str, torch.Tensor] = {}
    layers = {name: m for name, m in model.named_modules() if isinstance(m, WinogradConv2d)}
    handles = [m.register_forward_pre_hook(lambda m, args, name=name: inputs.setdefault(name, args[0]))
               for name, m in layers.items()]
    try:
        fn()
    finally:
        for handle in handles:
            handle.remove()
    return [WinogradLayer(tuple(size), name, tuple(x.shape), layers[name].algorithm(x),
                          *_algorithm_times(layers[name], x, repeats)) for name, x in inputs.items()]


def winograd_sweep(shapes: Sequence[Tuple[int, int, int, int]], out_channels: Sequence[int],
                   channels_last: Sequence[bool], repeats: int = 3) -> List[WinogradLayer]:
    """Every algorithm on a random float32 input of each (N, C_in, H, W) in ``shapes``, through a random
    3 x 3, padding-1 ``WinogradConv2d`` with the matching number of ``out_channels``, input and weight
    channels-last where ``channels_last`` says so (as inference mode keeps the RoI heads): the
    thresholds' measurements (``size`` is the map's (H, W), ``name`` says the channels and layout)."""
    from ..inference.winograd import WinogradConv2d
    gen = torch.Generator().manual_seed(0)
    out = []
    for shape, c_out, last in zip(shapes, out_channels, channels_last):
        layout = torch.channels_last if last else torch.contiguous_format
        layer = WinogradConv2d(shape[1], c_out, 3, padding=1).eval().to(memory_format=layout)
        x = torch.randn(shape, generator=gen).contiguous(memory_format=layout)
        name = f'{shape[1]} -> {c_out} channels' + (', channels-last' if last else '')
        with torch.no_grad():
            out.append(WinogradLayer(tuple(shape[-2:]), name, tuple(shape), layer.algorithm(x),
                                     *_algorithm_times(layer, x, repeats)))
    return out


def f4x4_step_sweep(shape: Tuple[int, int, int, int], steps: Sequence[int],
                    repeats: int = 3) -> Dict[int, float]:
    """ms (fastest of ``repeats``) of F(4x4, 3x3) on a random (N, C, H, W) ``shape``, C -> C channels,
    for each number of tiles per step in ``steps`` (:data:`~swin_dense.inference.winograd_f4.TILES_PER_STEP`)."""
    from ..inference import winograd_f4
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen)
    u = winograd_f4.transform_weight(torch.randn(shape[1], shape[1], 3, 3, generator=gen))
    with torch.no_grad():
        return {step: 1e3 * _times(lambda: winograd_f4.conv3x3(x, u, None, (1, 1), step), repeats)[0]
                for step in steps}


def _session(path: str):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    return ort.InferenceSession(path, sess_options=options, providers=['CPUExecutionProvider'])


def measure_segmentor(config: str, checkpoint: str, sizes: Sequence[Tuple[int, int]], repeats: int = 5,
                      cfg_options: Optional[Dict] = None, profile: bool = False) -> List[SpeedRow]:
    """One :class:`SpeedRow` per (H, W) in ``sizes``; the differences are the largest logit differences;
    ``profile``: with each eager run's :class:`ConvBound` and :func:`winograd_layers`."""
    rate = matmul_gflops() if profile else None
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
            profiled = (_profiled(eager, lambda: eager(x), fast.segmentor, lambda: fast(x), size, rate)
                        if profile else {})
            rows.append(SpeedRow(tuple(size), seconds, diff, **profiled))
    return rows


def _profiled(eager: torch.nn.Module, eager_fn: Callable[[], object], fast: torch.nn.Module,
              fast_fn: Callable[[], object], size: Tuple[int, int], rate: float) -> Dict:
    """:class:`SpeedRow`'s profiling fields at one size: the eager run's ``bound`` and the inference-mode
    model's ``winograd`` layers."""
    with torch.no_grad():
        return dict(bound=conv_bound(eager, eager_fn, size, rate), winograd=winograd_layers(fast, fast_fn, size))


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


def measure_detector(config: str, checkpoint: str, sizes: Sequence[Tuple[int, int]], repeats: int = 5,
                     cfg_options: Optional[Dict] = None, profile: bool = False) -> List[SpeedRow]:
    """One :class:`SpeedRow` per (H, W) in ``sizes`` (multiples of the preprocessor's padding); the
    differences are the largest box coordinate differences (px); ``profile``: with each eager run's
    :class:`ConvBound` and :func:`winograd_layers`."""
    rate = matmul_gflops() if profile else None
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
            profiled = (_profiled(models['eager'], lambda: models['eager'].test_step(batch), models['inference_mode'],
                                  lambda: models['inference_mode'].test_step(batch), size, rate) if profile else {})
            rows.append(SpeedRow(tuple(size), seconds, diff, **profiled))
    return rows


def bound_table(bounds: Sequence[ConvBound]) -> str:
    """A Markdown table of :class:`ConvBound` rows."""
    lines = ['| input (H x W) | eager, hooked run (s) | in convolutions | their GFLOP/s | fp32 matmul GFLOP/s '
             '| best speed-up with the same arithmetic |', '|---|---|---|---|---|---|']
    for b in bounds:
        lines.append(f'| {b.size[0]} x {b.size[1]} | {b.seconds:.3f} | {100 * b.conv_share:.0f} % '
                     f'| {b.conv_gflops:.0f} | {b.matmul_gflops:.0f} | {b.best_speedup:.2f}x |')
    return '\n'.join(lines)


def winograd_table(layers: Sequence[WinogradLayer]) -> str:
    """A Markdown table of :class:`WinogradLayer` rows: each algorithm's time, its speed-up over the
    direct convolution, and its error."""
    if not layers:
        return ''
    algorithms = list(layers[0].ms)
    names = {'direct': 'direct', 'nnpack': 'NNPACK', 'f4x4': 'F(4x4, 3x3)'}
    lines = ['| input (H x W) | layer | its input (N, C, H, W) | runs through | '
             + ' | '.join(f'{names[a]} (ms)' for a in algorithms)
             + f' | error {" / ".join(names[a] for a in algorithms)} (of the largest output) |',
             '|---' * (5 + len(algorithms)) + '|']
    for w in layers:
        times = [f'{w.ms[a]:.1f}' + ('' if a == 'direct' else f' ({w.ms["direct"] / w.ms[a]:.2f}x)')
                 for a in algorithms]
        lines.append(f'| {w.size[0]} x {w.size[1]} | `{w.name}` | {tuple(w.shape)} | {names[w.algorithm]} | '
                     + ' | '.join(times) + f' | {" / ".join(f"{w.error[a]:.1e}" for a in algorithms)} |')
    return '\n'.join(lines)


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
