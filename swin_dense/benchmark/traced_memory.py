"""Peak of live tensors in one training step, traced with fake tensors: shapes only, no compute.

A training step of SwinV2-L at 1536x1536 or of SwinV2-G at any size needs more memory and time than
a CPU box has; its memory does not need a run. Under ``FakeTensorMode`` every op allocates a fake
tensor of the real shape and dtype without computing anything, and :class:`PeakLive` (a
``TorchDispatchMode``) keeps the storages that ops create and are still referenced, so their running
sum is the step's peak of live tensors: activations, what autograd saves, and gradients.

What it counts: tensor storages created during the step (forward, loss, backward), each once, until
freed. What it leaves out: the parameters (passed as ``exclude``), the allocator's caching and
fragmentation, and kernels' workspace outside torch's allocator (cuDNN / oneDNN scratch). So it is a
lower bound of a GPU's ``max_memory_allocated`` for the same step; docs/distributed.md compares it
with measured CPU peaks.

The layers' per-size caches (shifted-window masks and token orders, position-bias tables: the
``functools.lru_cache`` functions of :mod:`swin_dense.layers`) are emptied before and after each trace:
before, so that every trace counts what a first step builds and keeps (as a real first step
would); after, so that no fake tensor stays in a cache that a real run would later be handed.
"""
from typing import Callable, Dict, Iterable, Set

import torch
import torch.nn as nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ..layers import position_bias, window_masks


class PeakLive(TorchDispatchMode):
    """Track the storages ops create; ``peak`` is the highest sum of those alive, ``largest`` the largest one.

    Args:
        exclude: storages not to count (the parameters).
    """

    def __init__(self, exclude: Set[StorageWeakRef]) -> None:
        super().__init__()
        self.exclude = exclude
        self.live: Dict[StorageWeakRef, int] = {}
        self.peak = 0
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                ref = StorageWeakRef(t.untyped_storage())
                if ref not in self.exclude and ref not in self.live:
                    self.live[ref] = t.untyped_storage().nbytes()
                    self.largest = max(self.largest, self.live[ref])
        for ref in [r for r in self.live if r.expired()]:
            del self.live[ref]
        self.peak = max(self.peak, sum(self.live.values()))
        return out


def traced_train_peak(model: nn.Module, inputs: Iterable[int],
                      loss: Callable = lambda outs: sum(o.float().mean() ** 2 for o in outs),
                      keep_grads: bool = True) -> Dict[str, int]:
    """Peak bytes of live tensors in one forward + backward of ``model`` on a (B, 3, H, W) input.

    Args:
        model: in train mode, on the CPU; parameters on the meta device (:mod:`.meta`) are replaced, in
            place, by fake CPU parameters of the same shape (the model is then only good for tracing).
        inputs: the input shape (B, 3, H, W).
        loss: outputs -> scalar (default: the benchmark's ``sum(mean(out) ** 2)``).
        keep_grads: count the weight gradients as they accumulate (True, a plain step); False drops
            each as soon as it is complete, so the peak is that of the activations alone (what a
            memory plan adds to separately counted gradients).

    Returns:
        ``peak`` (bytes of tensors alive at once, parameters excluded, gradients included) and
        ``largest`` (bytes of the largest single tensor).
    """
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    with mode:
        for module in model.modules():
            for name, p in module.named_parameters(recurse=False):
                if p.is_meta:
                    module._parameters[name] = nn.Parameter(torch.empty(p.shape, dtype=p.dtype),
                                                            requires_grad=p.requires_grad)
        params = list(model.parameters())
        fakes = [mode.from_tensor(p) for p in params]
    tracker = PeakLive({StorageWeakRef(f.untyped_storage()) for f in fakes})
    hooks = [] if keep_grads else [p.register_post_accumulate_grad_hook(_drop_grad) for p in params if p.requires_grad]
    clear_layer_caches()
    try:
        with mode, tracker:
            loss(model(torch.empty(*inputs))).backward()
    finally:
        clear_layer_caches()
        for hook in hooks:
            hook.remove()
        for p in params:
            p.grad = None
    return dict(peak=tracker.peak, largest=tracker.largest)


def clear_layer_caches() -> None:
    """Empty every ``functools.lru_cache`` of the layers that cache per-size tensors."""
    for module in (position_bias, window_masks):
        for obj in vars(module).values():
            if hasattr(obj, 'cache_clear'):
                obj.cache_clear()


def _drop_grad(param: torch.Tensor) -> None:
    param.grad = None


__all__ = ['PeakLive', 'clear_layer_caches', 'traced_train_peak']
