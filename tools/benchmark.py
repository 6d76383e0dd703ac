#!/usr/bin/env python
"""Speed, memory and agreement of swin_dense's SwinTransformerV2 against timm and mmpretrain.

Every implementation is built with the same architecture and loaded with the *same* weights: a
seeded random state dict in this package's keys is written into timm's and mmpretrain's layouts,
loaded there (strictly), and read back through ``swin_dense.checkpoint.to_backbone_state_dict`` with
layout 'timm' / 'mmpretrain', which must give the original tensors bit for bit. The stage outputs
are then compared (max abs difference per stage) and each implementation is timed in the same
process, interleaved, after warm-up.

    python tools/benchmark.py --arch tiny --window 16 --sizes 512x512,800x1344 --repeats 10
    python tools/benchmark.py --mode train --sizes 512x512          # with_cp off and on
    python tools/benchmark.py --impls swin_dense --sizes 512x768 --profile 25

Conventions (also in docs/benchmarks.md):

* Weights are random but non-degenerate: LayerNorm weights 1 + 0.2 N(0,1) (the res-post-norms are
  *not* zero as after a from-scratch init, which would make every block an identity), biases,
  q/v biases and logit scales randomised, so the comparison exercises every parameter.
* timm has no per-stage output norms; its wrapper here applies norm0..norm2 (swin_dense's weights)
  to the stage outputs and timm's own final ``norm`` as norm3, so all three do the same work.
  timm is built per input size with ``img_size=(H, W)`` (that sets its per-stage window and shift);
  static masks (``strict_img_size=True``) where every stage map divides into whole windows, else
  ``strict_img_size=False`` (mask rebuilt each forward). timm rolls before padding (timm #2438), so
  its masks are wrong at sizes whose shifted stages are not window multiples: there it is timed,
  not compared. mmpretrain runs with ``pad_small_map=False`` (its default, the official numerics).
* Forward: ``model.eval()`` under ``torch.no_grad()``. Train: ``model.train()``, forward + backward of
  ``sum(out.float().mean() ** 2 for out in outputs)``; each step first sets the gradients to None (as
  ``zero_grad`` does; timed). Stochastic depth and dropout are 0 everywhere.
* Time: median over ``--repeats`` interleaved runs (implementation order rotated every round) after
  ``--warmup`` runs each; per image = median / batch.
* Peak memory = cache + step peak. Step peak, CUDA: ``torch.cuda.max_memory_allocated()`` during one
  steady-state step minus the memory allocated before it (gradients of earlier steps released). CPU:
  the same quantity for torch's CPU allocator, from the allocation and free events that
  ``torch.profiler(profile_memory=True)`` records during one (separate, untimed) step: the highest
  running total of bytes allocated minus bytes freed. Cache: what the *first* step at a size leaves
  allocated (swin_dense's masks and, in eval, its position-bias and bias+mask caches; mmpretrain
  rebuilds its masks every step) plus timm's init-time mask buffers. Tensors only: no allocator
  cache, no oneDNN scratch outside torch's allocator, no Python objects; parameters and the input
  are not counted.
"""
import argparse
import contextlib
import gc
import json
import math
import os
import platform
import resource
import statistics
import sys
import time
import traceback
from typing import Callable, Dict, List, Optional, Sequence, Tuple

# Quiet kineto's "gpuGetDeviceCount failed" errors when torch.profiler runs without a GPU.
os.environ.setdefault('KINETO_LOG_LEVEL', '5')

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from swin_dense.checkpoint import to_backbone_state_dict  # noqa: E402
from swin_dense.models.backbones.swinv2 import ARCH_ZOO, SwinTransformerV2  # noqa: E402
from swin_dense.layers.linear import fused_linears  # noqa: E402
from swin_dense.layers.swin_block import effective_window  # noqa: E402

IMPLS = ('swin_dense', 'timm', 'mmpretrain', 'swin_dense_compiled', 'swin_dense_unfused')
DEFAULT_IMPLS = IMPLS[:3]  # swin_dense_compiled: inductor compiles for minutes on a small CPU
PATCH = 4


# ----------------------------------------------------------------------------------------------
# Architecture and sizes
# ----------------------------------------------------------------------------------------------

def parse_sizes(text: str) -> List[Tuple[int, int]]:
    sizes = []
    for item in text.split(','):
        item = item.strip().lower()
        if not item:
            continue
        h, _, w = item.partition('x')
        sizes.append((int(h), int(w or h)))
    if not sizes:
        raise ValueError(f'no sizes in {text!r}; use e.g. 512x512,800x1344')
    return sizes


def stage_maps(h: int, w: int, num_stages: int) -> List[Tuple[int, int]]:
    """Feature-map size of every stage (ceil division, as the padding patch embed / merging give)."""
    maps = [(math.ceil(h / PATCH), math.ceil(w / PATCH))]
    for _ in range(num_stages - 1):
        maps.append((math.ceil(maps[-1][0] / 2), math.ceil(maps[-1][1] / 2)))
    return maps


def timm_comparable(h: int, w: int, num_stages: int, window: int) -> Tuple[bool, str]:
    """Whether timm computes the same function as swin_dense at this size (and why not).

    timm decides window and shift per axis from ``grid // 2**i`` (floor) and rolls the map *before*
    padding it, so it matches only where its windows and shifts equal ours and every shifted stage
    divides into whole windows.
    """
    if h % PATCH or w % PATCH:
        return False, f'timm needs H and W divisible by the patch size {PATCH}'
    gh, gw = h // PATCH, w // PATCH
    for i, (mh, mw) in enumerate(stage_maps(h, w, num_stages)):
        ours_win, can_shift = effective_window(mh, mw, window)
        ours = (ours_win, ours_win, ours_win // 2 if can_shift else 0)
        fh, fw = gh // 2 ** i, gw // 2 ** i
        twh, tww = (fh if fh <= window else window), (fw if fw <= window else window)
        tsh = 0 if fh <= twh else window // 2
        tsw = 0 if fw <= tww else window // 2
        if (twh, tww) != ours[:2] or {tsh, tsw} != {ours[2]}:
            return False, (f'stage {i} ({mh}x{mw}): timm picks window {twh}x{tww} shift {tsh}/{tsw}, '
                           f'swin_dense window {ours[0]} shift {ours[2]}')
        if ours[2] and (mh % ours_win or mw % ours_win):
            return False, (f'stage {i} ({mh}x{mw}) is not a multiple of window {ours_win}: timm rolls before '
                           'padding (timm #2438), so its shifted-window masks are wrong here')
    return True, ''


def timm_static_ok(h: int, w: int, num_stages: int, window: int) -> bool:
    """timm's static (init-time) masks work: exact stage maps, shifted stages in whole windows."""
    reduction = PATCH * 2 ** (num_stages - 1)
    if h % reduction or w % reduction:
        return False
    for mh, mw in stage_maps(h, w, num_stages):
        win, can_shift = effective_window(mh, mw, window)
        if can_shift and (mh % win or mw % win):
            return False
    return True


# ----------------------------------------------------------------------------------------------
# Weights: one random state dict, written into every layout
# ----------------------------------------------------------------------------------------------

def random_state_dict(model: nn.Module, seed: int) -> Dict[str, torch.Tensor]:
    """Seeded, non-degenerate random weights in swin_dense's keys."""
    gen = torch.Generator().manual_seed(seed)

    def randn(shape, std, mean=0.0):
        return torch.randn(shape, generator=gen) * std + mean

    out = {}
    for key, value in model.state_dict().items():
        shape = value.shape
        if key.endswith('logit_scale'):
            out[key] = randn(shape, 0.3, math.log(10.0))
        elif '.cpb_mlp.' in key:
            out[key] = randn(shape, 0.5 if key.endswith('0.weight') or key.endswith('0.bias') else 0.05)
        elif key.endswith(('q_bias', 'v_bias')):
            out[key] = randn(shape, 0.1)
        elif value.dim() == 1 and key.endswith('weight'):  # LayerNorm weights
            out[key] = randn(shape, 0.2, 1.0)
        elif key.endswith('bias'):
            out[key] = randn(shape, 0.05)
        else:  # Linear / conv weights
            fan_in = value[0].numel()
            out[key] = randn(shape, 1.0 / math.sqrt(fan_in))
    return out


def to_timm_layout(sd: Dict[str, torch.Tensor], num_stages: int) -> Tuple[Dict, Dict]:
    """swin_dense keys -> timm keys (downsample at the start of the next stage, final ``norm``).

    Returns (timm state dict, the extra per-stage norms ``norm0..norm{n-2}`` that timm lacks).
    """
    timm_sd, extra = {}, {}
    last = f'norm{num_stages - 1}.'
    for key, value in sd.items():
        if key.startswith('layers.') and '.downsample.' in key:
            stage, rest = key[len('layers.'):].split('.', 1)
            timm_sd[f'layers.{int(stage) + 1}.{rest}'] = value
        elif key.startswith(last):
            timm_sd['norm.' + key[len(last):]] = value
        elif key.split('.')[0] in {f'norm{i}' for i in range(num_stages - 1)}:
            extra[key] = value
        else:
            timm_sd[key] = value
    return timm_sd, extra


def _official_to_unfold(weight: torch.Tensor) -> torch.Tensor:
    """Patch-merging reduction weight: official (x0,x1,x2,x3) concat order -> nn.Unfold order."""
    out_c, in4 = weight.shape
    c = in4 // 4
    return weight.reshape(out_c, 4, c)[:, [0, 2, 1, 3], :].transpose(1, 2).reshape(out_c, in4)


def to_mmpretrain_layout(sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """swin_dense keys -> mmpretrain ``SwinTransformerV2`` keys (the inverse of layout 'mmpretrain')."""
    out = {}
    for key, value in sd.items():
        if key.startswith('patch_embed.proj.'):
            key = 'patch_embed.projection.' + key[len('patch_embed.proj.'):]
        elif key.startswith('layers.'):
            stage, rest = key[len('layers.'):].split('.', 1)
            if rest.startswith('downsample.'):
                if rest == 'downsample.reduction.weight':
                    value = _official_to_unfold(value)
                key = f'stages.{int(stage) + 1}.{rest}'
            else:
                rest = (rest.replace('.attn.', '.attn.w_msa.')
                        .replace('.mlp.fc1.', '.ffn.layers.0.0.')
                        .replace('.mlp.fc2.', '.ffn.layers.1.'))
                key = f'stages.{stage}.{rest}'
        out[key] = value
    return out


def _same(a: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor]) -> List[str]:
    problems = [f'missing {k}' for k in sorted(set(a) - set(b))]
    problems += [f'unexpected {k}' for k in sorted(set(b) - set(a))]
    problems += [f'differs {k}' for k in sorted(set(a) & set(b))
                 if a[k].shape != b[k].shape or not torch.equal(a[k], b[k].to(a[k].dtype))]
    return problems


# ----------------------------------------------------------------------------------------------
# Implementations
# ----------------------------------------------------------------------------------------------

class TimmBackbone(nn.Module):
    """timm's SwinV2 stages plus per-stage output norms, NCHW outputs like the other two backbones."""

    def __init__(self, model: nn.Module, extra_norms: Dict[str, torch.Tensor], num_stages: int) -> None:
        super().__init__()
        self.model = model
        self.norms = nn.ModuleList()
        for i in range(num_stages - 1):
            norm = nn.LayerNorm(extra_norms[f'norm{i}.weight'].numel())
            norm.load_state_dict({'weight': extra_norms[f'norm{i}.weight'], 'bias': extra_norms[f'norm{i}.bias']})
            self.norms.append(norm)
        self.norms.append(model.norm)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        x = self.model.patch_embed(x)
        outs = []
        for stage, norm in zip(self.model.layers, self.norms):
            x = stage(x)
            outs.append(norm(x).permute(0, 3, 1, 2).contiguous())
        return tuple(outs)


class Impl:
    """One implementation under test: builds its model per size and toggles checkpointing/chunking."""

    name = ''
    per_size = False  # rebuilt for every input size

    def __init__(self, arch: Dict, window: int, state: Dict[str, torch.Tensor], device: torch.device) -> None:
        self.arch, self.window, self.state, self.device = arch, window, state, device
        self.num_stages = len(arch['depths'])
        self.model: Optional[nn.Module] = None
        self.note = ''

    def build(self, size: Tuple[int, int]) -> nn.Module:
        if self.model is None or self.per_size:
            self.model = None
            gc.collect()
            self.model = self._build(size).to(self.device)
        return self.model

    def _build(self, size: Tuple[int, int]) -> nn.Module:
        raise NotImplementedError

    def set_with_cp(self, flag: bool) -> None:
        raise NotImplementedError

    def set_chunk(self, chunk: int) -> None:
        pass

    def param_for_grad_check(self) -> torch.Tensor:
        raise NotImplementedError

    def static_buffer_bytes(self) -> int:
        """Bytes of masks the model built ahead of the first step (counted like caches filled by it)."""
        return 0


class SwinDenseImpl(Impl):
    name = 'swin_dense'

    def _build(self, size):
        model = SwinTransformerV2(arch=self.arch, window_size=self.window, drop_path_rate=0.0,
                                  out_indices=tuple(range(self.num_stages)))
        model.load_state_dict(self.state, strict=True)
        return model

    def set_with_cp(self, flag):
        for stage in self._backbone().layers:
            stage.with_cp = flag

    def set_chunk(self, chunk):
        for stage in self._backbone().layers:
            for block in stage.blocks:
                block.chunk_size = block.attn.chunk_size = chunk  # sequential attention and MLP

    def param_for_grad_check(self):
        return self._backbone().patch_embed.proj.weight

    def _backbone(self) -> SwinTransformerV2:
        return self.model


class SwinDenseCompiledImpl(SwinDenseImpl):
    """swin_dense under ``torch.compile`` (inductor); the first step at each size includes compilation."""

    name = 'swin_dense_compiled'

    def _build(self, size):
        return torch.compile(super()._build(size))

    def set_with_cp(self, flag):
        super().set_with_cp(flag)
        torch._dynamo.reset()  # recompile with the new setting

    def _backbone(self) -> SwinTransformerV2:
        return self.model._orig_mod


class _PlainLinears(nn.Module):
    """Runs the wrapped swin_dense model with the oneDNN Linear kernel off (plain ``F.linear``)."""

    def __init__(self, model: SwinTransformerV2) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        with fused_linears(False):
            return self.model(x)


class SwinDenseUnfusedImpl(SwinDenseImpl):
    """swin_dense with plain ``F.linear`` + ``F.gelu`` in inference: what the fused Linear layers gain."""

    name = 'swin_dense_unfused'

    def _build(self, size):
        return _PlainLinears(super()._build(size))

    def _backbone(self) -> SwinTransformerV2:
        return self.model.model


class TimmImpl(Impl):
    name = 'timm'
    per_size = True

    def _build(self, size):
        from timm.models.swin_transformer_v2 import SwinTransformerV2 as TimmSwinV2
        static = timm_static_ok(*size, self.num_stages, self.window)
        self.note = 'static masks' if static else 'strict_img_size=False (mask rebuilt every forward)'
        model = TimmSwinV2(img_size=size, patch_size=PATCH, num_classes=0, embed_dim=self.arch['embed_dims'],
                           depths=tuple(self.arch['depths']), num_heads=tuple(self.arch['num_heads']),
                           window_size=self.window, strict_img_size=static, drop_path_rate=0.0,
                           pretrained_window_sizes=(0,) * self.num_stages)
        timm_sd, extra = to_timm_layout(self.state, self.num_stages)
        model.load_state_dict(timm_sd, strict=True)
        back, _ = to_backbone_state_dict(model.state_dict(), 'timm', num_stages=self.num_stages)
        problems = _same({k: v for k, v in self.state.items() if k not in extra}, back)
        if problems:
            raise RuntimeError(f'timm -> swin_dense conversion does not round-trip: {problems[:5]}')
        return TimmBackbone(model, extra, self.num_stages)

    def set_with_cp(self, flag):
        self.model.model.set_grad_checkpointing(flag)

    def static_buffer_bytes(self):
        return sum(b.numel() * b.element_size() for n, b in self.model.named_buffers() if n.endswith('attn_mask'))

    def param_for_grad_check(self):
        return self.model.model.patch_embed.proj.weight


class MMPretrainImpl(Impl):
    name = 'mmpretrain'

    def _build(self, size):
        from mmpretrain.models.backbones import SwinTransformerV2 as MMPSwinV2
        arch = dict(self.arch, extra_norm_every_n_blocks=0)
        model = MMPSwinV2(arch=arch, window_size=self.window, drop_path_rate=0.0, pad_small_map=False,
                          out_indices=tuple(range(self.num_stages)),
                          pretrained_window_sizes=[0] * self.num_stages)
        mmp_sd = to_mmpretrain_layout(self.state)
        result = model.load_state_dict(mmp_sd, strict=False)
        missing = [k for k in result.missing_keys
                   if not k.endswith(('relative_coords_table', 'relative_position_index'))]
        if missing or result.unexpected_keys:
            raise RuntimeError(f'mmpretrain layout mismatch: missing {missing[:5]}, '
                               f'unexpected {result.unexpected_keys[:5]}')
        back, _ = to_backbone_state_dict(model.state_dict(), 'mmpretrain', num_stages=self.num_stages)
        problems = _same(self.state, back)
        if problems:
            raise RuntimeError(f'mmpretrain -> swin_dense conversion does not round-trip: {problems[:5]}')
        return model

    def set_with_cp(self, flag):
        for stage in self.model.stages:
            for block in stage.blocks:
                block.with_cp = flag

    def param_for_grad_check(self):
        return self.model.patch_embed.projection.weight


IMPL_CLASSES = {c.name: c for c in (SwinDenseImpl, SwinDenseCompiledImpl, SwinDenseUnfusedImpl, TimmImpl,
                                    MMPretrainImpl)}


# ----------------------------------------------------------------------------------------------
# Steps, timing, memory
# ----------------------------------------------------------------------------------------------

def make_step(model: nn.Module, x: torch.Tensor, mode: str, dtype: str) -> Callable[[], Tuple]:
    autocast = (lambda: torch.autocast(device_type=x.device.type, dtype=torch.bfloat16)) if dtype == 'bf16' \
        else contextlib.nullcontext
    if mode == 'forward':
        model.eval()

        def step():
            with torch.no_grad(), autocast():
                return model(x)
    else:
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]

        def step():
            for p in params:
                p.grad = None
            with autocast():
                outs = model(x)
                loss = sum(o.float().mean() ** 2 for o in outs)
            loss.backward()
            return tuple(o.detach() for o in outs)

        def release():
            for p in params:
                p.grad = None
        step.release = release
    return step


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed(step: Callable, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    step()
    _sync(device)
    return time.perf_counter() - start


def memory_of(step: Callable, device: torch.device) -> Tuple[int, int]:
    """(peak, retained): bytes allocated by torch during one step above what was allocated before it,
    at the highest point and at the end (what the step left allocated, e.g. caches it filled)."""
    release = getattr(step, 'release', lambda: None)  # train steps: gradients are not kept between steps
    release()
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        step()
        release()
        gc.collect()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base, torch.cuda.memory_allocated(device) - base
    from torch.profiler import ProfilerActivity, profile
    rss_reset()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
        release()
        gc.collect()
    step.rss_growth = rss_growth()
    events = [e for e in prof.profiler.kineto_results.events()
              if e.name() == '[memory]' and e.device_type() == torch.autograd.DeviceType.CPU]
    events.sort(key=lambda e: e.start_ns())
    total = peak = 0
    for event in events:
        total += event.nbytes()
        peak = max(peak, total)
    return peak, total


_RSS_BASE = [None]


def _status_kib(field: str) -> Optional[int]:
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_reset() -> None:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS (Linux; silently nothing elsewhere)."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        _RSS_BASE[0] = _status_kib('VmRSS')
    except OSError:
        _RSS_BASE[0] = None


def rss_growth() -> Optional[int]:
    """Bytes the process's peak RSS rose above its RSS at the last :func:`rss_reset`, or None."""
    hwm = _status_kib('VmHWM')
    if _RSS_BASE[0] is None or hwm is None:
        return None
    return (hwm - _RSS_BASE[0]) * 1024


def _is_oom(err: BaseException) -> bool:
    text = str(err)
    return isinstance(err, (MemoryError, getattr(torch.cuda, 'OutOfMemoryError', MemoryError))) or \
        "can't allocate memory" in text or 'out of memory' in text.lower()


def _mib(nbytes: Optional[int]) -> Optional[float]:
    return None if nbytes is None else nbytes / 2 ** 20


def _short_error(err: BaseException) -> str:
    first = (str(err).strip().splitlines() or [''])[0]
    return f'{type(err).__name__}: {first[:300]}'


# ----------------------------------------------------------------------------------------------
# The benchmark
# ----------------------------------------------------------------------------------------------

def run_size(impls: Dict[str, Impl], size: Tuple[int, int], mode: str, with_cp: bool, args,
             log: Callable[[str], None]) -> List[Dict]:
    device = torch.device(args.device)
    h, w = size
    gen = torch.Generator().manual_seed(args.seed + h * 10007 + w)
    x = torch.randn(args.batch, 3, h, w, generator=gen).to(device)
    num_stages = next(iter(impls.values())).num_stages
    rows: Dict[str, Dict] = {}
    steps: Dict[str, Callable] = {}
    outputs: Dict[str, Tuple] = {}
    grads: Dict[str, torch.Tensor] = {}

    for name, impl in impls.items():
        row = dict(impl=name, size=f'{h}x{w}', height=h, width=w, mode=mode, with_cp=with_cp,
                   chunk=args.chunk if name == 'swin_dense' else 0, batch=args.batch, dtype=args.dtype,
                   device=args.device, status='ok', error='', note='')
        rows[name] = row
        try:
            model = impl.build(size)
            impl.set_with_cp(with_cp)
            impl.set_chunk(args.chunk)
            row['note'] = impl.note
            # The first step at this size fills whatever the implementation caches (masks, position
            # bias): those bytes count towards its memory, on top of the steady-state step peak.
            first = make_step(model, x, mode, args.dtype)
            if args.no_memory:
                first()
            else:
                first_peak, retained = memory_of(first, device)
                row['cache_mib'] = (max(retained, 0) + impl.static_buffer_bytes()) / 2 ** 20
                if args.memory_only:  # the first step's peak, caches it filled included; no timing
                    row['peak_mem_mib'] = first_peak / 2 ** 20 + impl.static_buffer_bytes() / 2 ** 20
                    row['rss_growth_mib'] = _mib(getattr(first, 'rss_growth', None))
                    row['note'] = (row['note'] + '; ' if row['note'] else '') + 'memory only: first step'
                    del model, first
                    impl.model = None  # free it before the next implementation's step
                    gc.collect()
                    continue
            if not args.no_check:
                # Agreement: fp32, eval, no grad (train mode too: dropout and drop path are 0).
                model.eval()
                with torch.no_grad():
                    outputs[name] = tuple(o.float() for o in model(x))
                if mode == 'train' and args.dtype == 'fp32':
                    check = make_step(model, x, mode, 'fp32')
                    check()
                    grads[name] = impl.param_for_grad_check().grad.detach().clone()
                    check.release()
            steps[name] = make_step(model, x, mode, args.dtype)  # (sets train / eval mode again)
            for _ in range(args.warmup - 1):
                steps[name]()
        except Exception as err:  # a peer that cannot run is reported, not fatal
            row['status'] = 'oom' if _is_oom(err) else 'error'
            row['error'] = _short_error(err)
            if args.verbose:
                traceback.print_exc()
            steps.pop(name, None)
            impl.model = None
            gc.collect()
            if device.type == 'cuda':
                torch.cuda.empty_cache()
            log(f'  {name}: {row["status"]}: {row["error"]}')

    # Agreement with swin_dense, stage by stage.
    ref = outputs.get('swin_dense')
    for name, row in rows.items():
        row['max_abs_diff'] = None
        row['grad_rel_diff'] = None
        if name == 'swin_dense' or name not in outputs or ref is None:
            continue
        if name == 'timm':
            ok, why = timm_comparable(h, w, num_stages, args.window)
            if not ok:
                row['compare'] = f'not compared: {why}'
                continue
        shapes = [tuple(o.shape) for o in outputs[name]], [tuple(o.shape) for o in ref]
        if shapes[0] != shapes[1]:
            row['compare'] = f'output shapes differ: {shapes[0]} vs {shapes[1]}'
            continue
        row['max_abs_diff'] = [float((a - b).abs().max()) for a, b in zip(outputs[name], ref)]
        row['compare'] = 'compared'
        if name in grads and 'swin_dense' in grads:
            g, g_ref = grads[name], grads['swin_dense']
            row['grad_rel_diff'] = float((g - g_ref).abs().max() / g_ref.abs().max().clamp_min(1e-30))
    outputs.clear()

    # Time: interleaved, rotating the order every round.
    times: Dict[str, List[float]] = {name: [] for name in steps}
    order = list(steps)
    for r in range(args.repeats):
        for name in order[r % len(order):] + order[:r % len(order)] if order else []:
            if name not in steps:
                continue
            try:
                times[name].append(timed(steps[name], device))
            except Exception as err:
                rows[name]['status'] = 'oom' if _is_oom(err) else 'error'
                rows[name]['error'] = _short_error(err)
                steps.pop(name)

    for name, step in list(steps.items()):
        row = rows[name]
        ts = times[name]
        row['times_s'] = ts
        row['median_s'] = statistics.median(ts) if ts else None
        row['ms_per_image'] = 1000 * row['median_s'] / args.batch if ts else None
        row['images_per_s'] = args.batch / row['median_s'] if ts else None
        if not args.no_memory:
            try:
                row['step_peak_mib'] = memory_of(step, device)[0] / 2 ** 20
                row['peak_mem_mib'] = row['step_peak_mib'] + row.get('cache_mib', 0.0)
            except Exception as err:
                row['peak_mem_mib'] = None
                row['error'] = f'memory: {_short_error(err)}'
    for name, row in rows.items():
        row.setdefault('ms_per_image', None)
        row.setdefault('images_per_s', None)
        row.setdefault('peak_mem_mib', None)
        row.setdefault('step_peak_mib', None)
        row.setdefault('cache_mib', None)
        row.setdefault('rss_growth_mib', None)
        row.setdefault('compare', '')
    base = rows.get('swin_dense', {})
    for row in rows.values():
        row['speedup_vs_peer'] = (row['ms_per_image'] / base['ms_per_image']
                                  if row['ms_per_image'] and base.get('ms_per_image') else None)
        row['mem_ratio_peer_over_ours'] = (row['peak_mem_mib'] / base['peak_mem_mib']
                                           if row['peak_mem_mib'] and base.get('peak_mem_mib') else None)
    del steps, x
    if args.device == 'cuda':
        torch.cuda.empty_cache()
    return list(rows.values())


def format_row(row: Dict) -> str:
    if row['status'] != 'ok':
        return f'{row["impl"]:>11}  {row["status"]}: {row["error"]}'
    if row['ms_per_image'] is None:
        parts = [f'{row["impl"]:>11}', '  (not timed)']
    else:
        parts = [f'{row["impl"]:>11}', f'{row["ms_per_image"]:9.1f} ms/img', f'{row["images_per_s"]:7.2f} img/s']
    parts.append(f'peak {row["peak_mem_mib"]:8.1f} MiB (cache {row["cache_mib"] or 0:.1f})'
                 if row['peak_mem_mib'] is not None else 'peak      n/a')
    if row.get('rss_growth_mib') is not None and 'memory only' in row['note']:
        parts.append(f'RSS +{row["rss_growth_mib"]:.0f} MiB')  # meaningful in a fresh process only
    if row['impl'] != 'swin_dense':
        if row['speedup_vs_peer']:
            parts.append(f'swin_dense {row["speedup_vs_peer"]:.2f}x faster')
        if row['mem_ratio_peer_over_ours']:
            parts.append(f'mem {row["mem_ratio_peer_over_ours"]:.2f}x ours')
    if row['max_abs_diff'] is not None:
        parts.append('max|diff| per stage ' + ' '.join(f'{d:.1e}' for d in row['max_abs_diff']))
        if row['grad_rel_diff'] is not None:
            parts.append(f'grad rel diff {row["grad_rel_diff"]:.1e}')
    elif row['compare']:
        parts.append(row['compare'])
    if row['note']:
        parts.append(f'[{row["note"]}]')
    return '  '.join(parts)


def markdown_table(rows: List[Dict]) -> str:
    lines = ['| size | mode | with_cp | impl | ms / image | images / s | peak MiB (cache) | swin_dense speed-up | '
             'peer mem / ours | max abs diff (stages) |',
             '|---|---|---|---|---:|---:|---:|---:|---:|---|']

    def num(v, fmt):
        return format(v, fmt) if v is not None else '-'

    def mem_cell(r):
        if r['peak_mem_mib'] is None:
            return 'oom' if r['error'].startswith('memory:') and _is_oom(RuntimeError(r['error'])) else '-'
        return f'{r["peak_mem_mib"]:.0f} ({num(r["cache_mib"], ".0f")})'

    for r in rows:
        if r['status'] != 'ok':
            lines.append(f'| {r["size"]} | {r["mode"]} | {r["with_cp"]} | {r["impl"]} | {r["status"]}: '
                         f'{r["error"][:80]} | | | | | |')
            continue
        diff = (' / '.join(f'{d:.0e}' for d in r['max_abs_diff']) if r['max_abs_diff'] is not None
                else ('not compared' if r['compare'].startswith('not compared') else '-'))
        chunk = f' (chunk {r["chunk"]})' if r['chunk'] else ''
        lines.append(f'| {r["size"]} | {r["mode"]} | {r["with_cp"]} | {r["impl"]}{chunk} | '
                     f'{num(r["ms_per_image"], ".1f")} | {num(r["images_per_s"], ".2f")} | '
                     f'{mem_cell(r)} | '
                     f'{"-" if r["impl"] == "swin_dense" else num(r["speedup_vs_peer"], ".2f")} | '
                     f'{"-" if r["impl"] == "swin_dense" else num(r["mem_ratio_peer_over_ours"], ".2f")} | '
                     f'{diff} |')
    return '\n'.join(lines)


def plot(rows: List[Dict], path: str, title: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    series: Dict[Tuple, List[Dict]] = {}
    for r in rows:
        if r['status'] == 'ok':
            series.setdefault((r['impl'], r['mode'], r['with_cp']), []).append(r)
    for (impl, mode, cp), rs in sorted(series.items()):
        rs = sorted(rs, key=lambda r: r['height'] * r['width'])
        mpix = [r['height'] * r['width'] / 1e6 for r in rs]
        label = impl + (f' {mode}' if len({k[1] for k in series}) > 1 else '') + (' +cp' if cp else '')
        style = '-' if not cp else '--'
        ax_t.plot(mpix, [r['ms_per_image'] for r in rs], style, marker='o', label=label)
        if any(r['peak_mem_mib'] is not None for r in rs):
            ax_m.plot(mpix, [r['peak_mem_mib'] for r in rs], style, marker='o', label=label)
    for ax, ylabel in ((ax_t, 'median ms / image'), (ax_m, 'peak memory (MiB)')):
        ax.set_xlabel('input size (megapixels)')
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def profile_swin_dense(arch: Dict, args, size: Tuple[int, int], top: int) -> str:
    """Top ops of one swin_dense forward (or train step) at ``size``, by self CPU (or CUDA) time."""
    from torch.profiler import ProfilerActivity, profile
    device = torch.device(args.device)
    model = SwinTransformerV2(arch=arch, window_size=args.window, drop_path_rate=0.0,
                              attn_chunk_size=args.chunk).to(device)
    x = torch.randn(args.batch, 3, *size, device=device)
    mode = args.modes[0]
    step = make_step(model, x, mode, args.dtype)
    for _ in range(max(args.warmup, 1)):
        step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == 'cuda' else [])
    with profile(activities=activities, record_shapes=True) as prof:
        for _ in range(args.repeats):
            step()
            _sync(device)
    key = 'self_cuda_time_total' if device.type == 'cuda' else 'self_cpu_time_total'
    return prof.key_averages(group_by_input_shape=args.profile_shapes).table(sort_by=key, row_limit=top,
                                                                            max_name_column_width=60)


def time_parts_swin_dense(arch: Dict, args, size: Tuple[int, int]) -> str:
    """Wall time of one swin_dense forward at ``size`` split by part, with each part's multiply-adds.

    Forward hooks time every MLP, window attention (qkv projection, attention, output projection),
    output projection alone and patch merging; the rest of the forward (patch embedding, pad, window
    shuffles, LayerNorms, residuals) is what the parts leave. GFLOP count two per multiply-add of the
    Linear layers and of the attention's q.k and attn.v products.
    """
    from swin_dense.layers.swin_block import Mlp, PatchMergingV2
    from swin_dense.layers.window_attention import WindowAttentionV2
    device = torch.device(args.device)
    model = SwinTransformerV2(arch=arch, window_size=args.window, drop_path_rate=0.0,
                              attn_chunk_size=args.chunk).to(device)
    x = torch.randn(args.batch, 3, *size, device=device)
    step = make_step(model, x, 'forward', args.dtype)
    for _ in range(max(args.warmup, 1)):
        step()

    def mlp_flops(module, inp):
        return 4 * inp.numel() * module.fc1.out_features

    def attention_flops(module, inp):  # qkv (3C) + proj (C) + q.k and attn.v (2 N C per token)
        return 2 * inp.numel() * (4 * inp.shape[-1] + 2 * inp.shape[1])

    parts = {'MLP (fc1 + GELU, fc2)': (Mlp, mlp_flops),
             'window attention (qkv, attention, proj)': (WindowAttentionV2, attention_flops),
             '  of which output projection': (None, lambda module, inp: 2 * inp.numel() * module.out_features),
             'patch merging': (PatchMergingV2, lambda module, inp: 2 * inp.numel() * module.reduction.out_features)}
    seconds = dict.fromkeys(parts, 0.0)
    flops = dict.fromkeys(parts, 0)
    started: Dict[int, float] = {}
    handles = []

    def watch(module: nn.Module, name: str, count: Callable) -> None:
        def pre(mod, inputs):
            _sync(device)
            started[id(mod)] = time.perf_counter()

        def post(mod, inputs, output):
            _sync(device)
            seconds[name] += time.perf_counter() - started.pop(id(mod))
            flops[name] += count(mod, inputs[0])
        handles.extend((module.register_forward_pre_hook(pre), module.register_forward_hook(post)))

    for module in model.modules():
        for name, (kind, count) in parts.items():
            if kind is not None and isinstance(module, kind):
                watch(module, name, count)
        if isinstance(module, WindowAttentionV2):
            watch(module.proj, '  of which output projection', parts['  of which output projection'][1])
    _sync(device)
    start = time.perf_counter()
    for _ in range(args.repeats):
        step()
    _sync(device)
    total = (time.perf_counter() - start) / args.repeats
    for h in handles:
        h.remove()
    top_level = [n for n in parts if not n.startswith(' ')]
    rows = [(name, seconds[name] / args.repeats, flops[name] / args.repeats / 1e9) for name in parts]
    rows.append(('everything else', total - sum(seconds[n] for n in top_level) / args.repeats, 0.0))
    lines = [f'forward {size[0]}x{size[1]}: {total:.3f} s per forward (hooks in), {args.repeats} forwards',
             f'{"part":<42} {"s / forward":>11} {"share":>6} {"GFLOP":>9} {"GFLOP/s":>8}']
    for name, sec, gflop in rows:
        rate = f'{gflop / sec:8.1f}' if gflop else f'{"-":>8}'
        lines.append(f'{name:<42} {sec:11.3f} {sec / total:6.1%} {gflop:9.3f} {rate}')
    return '\n'.join(lines)


def environment() -> Dict:
    versions = {'python': platform.python_version(), 'torch': torch.__version__}
    for mod in ('timm', 'mmpretrain', 'mmcv', 'mmengine'):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception as err:  # noqa: BLE001
            versions[mod] = f'unavailable ({type(err).__name__})'
    versions.update(machine=platform.machine(), processor=platform.processor() or '', cpu_count=os.cpu_count(),
                    torch_threads=torch.get_num_threads(),
                    loadavg=os.getloadavg() if hasattr(os, 'getloadavg') else None)
    if torch.cuda.is_available():
        versions['cuda_device'] = torch.cuda.get_device_name()
    return versions


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--arch', default='tiny', choices=sorted(ARCH_ZOO), help='named architecture')
    p.add_argument('--arch-json', help='architecture as JSON: {"embed_dims":..,"depths":[..],"num_heads":[..]} '
                                       '(overrides --arch)')
    p.add_argument('--window', type=int, default=16, help='window size (all stages)')
    p.add_argument('--sizes', default='512x512,800x1344,1536x1536', help='comma-separated HxW input sizes')
    p.add_argument('--mode', default='forward',
                   help="'forward' (eval, no grad), 'train' (forward + backward), or 'forward,train'")
    p.add_argument('--impls', default=','.join(DEFAULT_IMPLS), help=f'comma-separated subset of {",".join(IMPLS)}')
    p.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
    p.add_argument('--dtype', default='fp32', choices=('fp32', 'bf16'), help='bf16 = torch.autocast(bfloat16)')
    p.add_argument('--with-cp', nargs='?', const='on', default=None, choices=('off', 'on', 'both'),
                   help='activation checkpointing in train mode: off, on (bare flag) or both '
                        '(default: both for train; forward never checkpoints)')
    p.add_argument('--chunk', type=int, default=0, help='swin_dense attn_chunk_size (peers have none)')
    p.add_argument('--batch', type=int, default=1)
    p.add_argument('--repeats', type=int, default=10, help='timed runs per implementation and size')
    p.add_argument('--warmup', type=int, default=2,
                   help='untimed runs per implementation and size first (at least 1: the first fills caches)')
    p.add_argument('--threads', type=int, default=0, help='torch.set_num_threads (0: leave torch default)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--no-check', action='store_true', help='skip the agreement check')
    p.add_argument('--no-memory', action='store_true', help='skip the peak-memory measurement')
    p.add_argument('--memory-only', action='store_true',
                   help='one step per implementation: its peak memory (caches it fills included), no timing and '
                        'no agreement check; for sizes where a step takes minutes')
    p.add_argument('--mem-limit-gb', type=float, default=0,
                   help='cap this process\'s data segment (RLIMIT_DATA: heap and private anonymous mappings, '
                        'not the shared libraries), so that running out of memory on CPU is an oom row instead of '
                        'the kernel\'s OOM killer; leave ~1.5 GB for the imports')
    p.add_argument('--json', dest='json_out', help='write all rows (and the environment) to this JSON file')
    p.add_argument('--plot', help='write a PNG of time and memory against input size')
    p.add_argument('--markdown', action='store_true', help='print a markdown table at the end')
    p.add_argument('--profile', type=int, default=0, metavar='TOP',
                   help='instead of comparing: profile swin_dense at the first size and print the TOP ops')
    p.add_argument('--profile-shapes', action='store_true', help='group the profile by input shapes')
    p.add_argument('--time-parts', action='store_true',
                   help='instead of comparing: time the parts of one swin_dense forward at the first size '
                        '(MLP, window attention, output projection, patch merging, the rest) with their GFLOP')
    p.add_argument('--verbose', action='store_true', help='print tracebacks of failing implementations')
    args = p.parse_args(argv)
    args.modes = [m.strip() for m in args.mode.split(',') if m.strip()]
    if not args.modes or any(m not in ('forward', 'train') for m in args.modes):
        p.error(f'--mode must be forward, train or forward,train; got {args.mode!r}')
    args.impl_names = [i.strip() for i in args.impls.split(',') if i.strip()]
    unknown = [i for i in args.impl_names if i not in IMPLS]
    if unknown or not args.impl_names:
        p.error(f'unknown --impls {unknown}; choose from {IMPLS}')
    if 'swin_dense' not in args.impl_names and not args.memory_only:
        args.impl_names.insert(0, 'swin_dense')  # the reference for agreement and ratios
    args.size_list = parse_sizes(args.sizes)
    if args.repeats < 1 or args.warmup < 1:
        p.error('--repeats and --warmup must be >= 1')
    if args.memory_only and args.no_memory:
        p.error('--memory-only and --no-memory exclude each other')
    if args.memory_only:
        args.no_check = True
    return args


def main(argv: Optional[Sequence[str]] = None) -> List[Dict]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.mem_limit_gb:
        limit = int(args.mem_limit_gb * 2 ** 30)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda: no CUDA device is available')
    arch = json.loads(args.arch_json) if args.arch_json else dict(ARCH_ZOO[args.arch])
    arch_name = args.arch if not args.arch_json else 'custom'
    SwinTransformerV2(arch=arch)  # validates the arch with a clear message

    def log(msg: str) -> None:
        print(msg, flush=True)

    env = environment()
    log(f'# swin_dense benchmark: arch {arch_name} {arch}, window {args.window}, {args.device}, {args.dtype}, '
        f'batch {args.batch}, chunk {args.chunk}')
    log('# ' + ', '.join(f'{k} {v}' for k, v in env.items()))

    if args.profile:
        log(profile_swin_dense(arch, args, args.size_list[0], args.profile))
        return []
    if args.time_parts:
        log(time_parts_swin_dense(arch, args, args.size_list[0]))
        return []

    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    template = SwinTransformerV2(arch=arch, window_size=args.window, out_indices=tuple(range(len(arch['depths']))))
    state = random_state_dict(template, args.seed)
    del template
    impls = {name: IMPL_CLASSES[name](arch, args.window, state, device) for name in args.impl_names}

    all_rows: List[Dict] = []
    for mode in args.modes:
        cp_setting = args.with_cp or ('both' if mode == 'train' else 'off')
        cps = [False] if mode == 'forward' else {'off': [False], 'on': [True], 'both': [False, True]}[cp_setting]
        for size in args.size_list:
            for with_cp in cps:
                log(f'\n## {mode} {size[0]}x{size[1]}' + (f' with_cp={with_cp}' if mode == 'train' else '')
                    + f'  (stage maps {stage_maps(*size, len(arch["depths"]))})')
                rows = run_size(impls, size, mode, with_cp, args, log)
                for row in rows:
                    row.update(arch=arch_name, arch_dict=arch, window=args.window)
                    log(format_row(row))
                all_rows.extend(rows)

    if args.markdown:
        log('\n' + markdown_table(all_rows))
    if args.json_out:
        with open(args.json_out, 'w') as f:
            json.dump(dict(environment=env, argv=sys.argv[1:] if argv is None else list(argv), rows=all_rows), f,
                      indent=1)
        log(f'wrote {args.json_out}')
    if args.plot:
        plot(all_rows, args.plot, f'SwinV2 {arch_name}, window {args.window}, {args.device} {args.dtype}, '
                                  f'batch {args.batch}, {torch.get_num_threads()} thread(s), torch {torch.__version__}')
        log(f'wrote {args.plot}')
    return all_rows


if __name__ == '__main__':
    main()
