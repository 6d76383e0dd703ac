"""Activation checkpointing of a piece of the forward, decided by autograd's grad mode."""
from typing import Any, Callable

import torch
from torch.utils.checkpoint import checkpoint


def checkpoint_if_grad_enabled(fn: Callable[..., torch.Tensor], *args: Any) -> torch.Tensor:
    """``fn(*args)``, checkpointed (non-reentrant: recomputed in backward) while grad mode is on.

    Grad mode, not ``module.training``, decides: checkpointing saves memory exactly when autograd
    records the graph (a gradient taken in eval mode too), and under ``torch.no_grad()`` there is
    nothing to save, in training mode or not.
    """
    if torch.is_grad_enabled():
        return checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)
