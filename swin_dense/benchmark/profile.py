"""Where swin_dense's time goes: the top ops of a profile (``--profile``) and a forward split by part
with each part's FLOP (``--time-parts``).
"""
import math
import time
from typing import Callable, Dict, List, Tuple

import torch
import torch.nn as nn

from ..layers.swin_block import Mlp, PatchMergingV2
from ..layers.window_attention import WindowAttentionV2
from ..models import SwinTransformerV2
from .measurement import make_step, sync

MLP, ATTENTION, PROJECTION, MERGING = ('MLP (fc1 + GELU, fc2)', 'window attention (qkv, attention, proj)',
                                       '  of which output projection', 'patch merging')
PARTS = (MLP, ATTENTION, PROJECTION, MERGING)  # indented: part of the one above


def _swin_dense(arch: Dict, args, device: torch.device) -> nn.Module:
    return SwinTransformerV2(arch=arch, window_size=args.window, drop_path_rate=0.0, attn_chunk_size=args.attn_chunk,
                             mlp_chunk_size=args.mlp_chunk).to(device)  # --attn-chunk / --mlp-chunk: sequential mode


def profile_swin_dense(arch: Dict, args, size: Tuple[int, int], top: int) -> str:
    """Top ops of one swin_dense forward (or train step) at ``size``, by self CPU (or CUDA) time."""
    from torch.profiler import ProfilerActivity, profile
    device = torch.device(args.device)
    model = _swin_dense(arch, args, device)
    x = torch.randn(args.batch, 3, *size, device=device)
    mode = args.modes[0]
    step = make_step(model, x, mode, args.dtype)
    for _ in range(max(args.warmup, 1)):
        step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == 'cuda' else [])
    with profile(activities=activities, record_shapes=True) as prof:
        for _ in range(args.repeats):
            step()
            sync(device)
    key = 'self_cuda_time_total' if device.type == 'cuda' else 'self_cpu_time_total'
    return prof.key_averages(group_by_input_shape=args.profile_shapes).table(sort_by=key, row_limit=top,
                                                                            max_name_column_width=60)


def part_modules(model: nn.Module) -> Dict[str, List[Tuple[str, nn.Module]]]:
    """(qualified name, module) of every part of :data:`PARTS`: each MLP, window attention, its
    output projection, patch merging."""
    parts: Dict[str, List[Tuple[str, nn.Module]]] = {name: [] for name in PARTS}
    for name, module in model.named_modules():
        if isinstance(module, Mlp):
            parts[MLP].append((name, module))
        elif isinstance(module, WindowAttentionV2):
            parts[ATTENTION].append((name, module))
            parts[PROJECTION].append((f'{name}.proj', module.proj))
        elif isinstance(module, PatchMergingV2):
            parts[MERGING].append((name, module))
    return parts


def _fused_linear_flop(x_shape, w_shape, *args, out_shape=None, **kwargs) -> int:
    """oneDNN's fused Linear (``mkldnn._linear_pointwise``): 2 per multiply-add, like ``aten.addmm``."""
    return 2 * math.prod(x_shape) * w_shape[0]


def _cpu_sdpa_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """The fused CPU attention kernel: q.k and attn.v, as torch counts its CUDA attention kernels."""
    from torch.utils.flop_counter import sdpa_flop_count
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def module_flops(model: nn.Module, step: Callable) -> Dict[str, int]:
    """FLOP of one call of ``step`` per module of ``model`` (qualified name; '' for all of it), counted
    by ``torch.utils.flop_counter.FlopCounterMode``: the matrix products, convolutions and attention
    kernels that ran (2 per multiply-add), including the two fused CPU kernels that torch's table
    lacks (the fused Linear layers and the CPU attention kernel)."""
    from torch.utils.flop_counter import FlopCounterMode
    fused = {torch.ops.mkldnn._linear_pointwise: _fused_linear_flop,
             torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flop}
    with FlopCounterMode(display=False, custom_mapping=fused) as counter:
        step()
    counts = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
    root = type(model).__name__  # FlopCounterMode names modules as root class name + qualified name
    out = {name: counts.get(f'{root}.{name}' if name else root, 0) for name, _ in model.named_modules()}
    out[''] = counts.get('Global', 0)
    return out


def time_parts_swin_dense(arch: Dict, args, size: Tuple[int, int]) -> str:
    """Wall time of one swin_dense forward at ``size`` split by part, with each part's FLOP.

    Forward hooks time every MLP, window attention (qkv projection, attention, output projection),
    output projection alone and patch merging; the rest of the forward (patch embedding, pad, window
    shuffles, LayerNorms, residuals) is what the parts leave. The forward as a whole is timed with
    ``torch.utils.benchmark.Timer`` (mean of ``args.repeats`` forwards, after its own untimed warm-up
    calls; the hooks' sums restart with the timed ones). GFLOP: :func:`module_flops` of one more,
    untimed forward after the warm-up (so caches filled by the first forward are not counted).
    """
    from torch.utils import benchmark as torch_benchmark
    device = torch.device(args.device)
    model = _swin_dense(arch, args, device)
    x = torch.randn(args.batch, 3, *size, device=device)
    step = make_step(model, x, 'forward', args.dtype)
    for _ in range(max(args.warmup, 1)):
        step()

    parts = part_modules(model)
    per_module = module_flops(model, step)
    flops = {name: sum(per_module[qualname] for qualname, _ in modules) for name, modules in parts.items()}
    seconds = dict.fromkeys(PARTS, 0.0)
    started: Dict[int, float] = {}
    handles = []

    def watch(module: nn.Module, name: str) -> None:
        def pre(mod, inputs):
            sync(device)
            started[id(mod)] = time.perf_counter()

        def post(mod, inputs, output):
            sync(device)
            seconds[name] += time.perf_counter() - started.pop(id(mod))
        handles.extend((module.register_forward_pre_hook(pre), module.register_forward_hook(post)))

    def restart() -> None:
        seconds.update(dict.fromkeys(PARTS, 0.0))

    def clock() -> float:
        sync(device)
        return time.perf_counter()

    for name, modules in parts.items():
        for _, module in modules:
            watch(module, name)
    timer = torch_benchmark.Timer(stmt='step()', setup='restart()', globals=dict(step=step, restart=restart),
                                  timer=clock, num_threads=torch.get_num_threads())
    total = timer.timeit(args.repeats).mean
    for h in handles:
        h.remove()
    top_level = [n for n in PARTS if not n.startswith(' ')]
    rows = [(name, seconds[name] / args.repeats, flops[name] / 1e9) for name in PARTS]
    rows.append(('everything else', total - sum(seconds[n] for n in top_level) / args.repeats, 0.0))
    lines = [f'forward {size[0]}x{size[1]}: {total:.3f} s per forward (hooks in), {args.repeats} forwards',
             f'{"part":<42} {"s / forward":>11} {"share":>6} {"GFLOP":>9} {"GFLOP/s":>8}']
    for name, sec, gflop in rows:
        rate = f'{gflop / sec:8.1f}' if gflop else f'{"-":>8}'
        lines.append(f'{name:<42} {sec:11.3f} {sec / total:6.1%} {gflop:9.3f} {rate}')
    return '\n'.join(lines)
