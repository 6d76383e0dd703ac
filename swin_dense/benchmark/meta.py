"""Modules whose parameters live on the meta device: shapes and counts of SwinV2-G without its 12 GB.

:func:`empty_parameters` is the approach of accelerate's ``init_empty_weights``: while it is active,
every parameter a module registers is replaced by a meta tensor of the same shape, dtype and
``requires_grad`` (buffers stay real and small: masks and coordinate tables). Unlike
``with torch.device('meta')`` it leaves every other tensor op real, so constructors that compute
with tensors (``torch.linspace(...).item()`` in mmpretrain's stochastic-depth rule) still work.
"""
import contextlib
from typing import Iterator, Optional

import torch
import torch.nn as nn


@contextlib.contextmanager
def empty_parameters() -> Iterator[None]:
    """Register every module parameter created inside the block on the meta device."""
    register = nn.Module.register_parameter

    def register_on_meta(module: nn.Module, name: str, param: Optional[nn.Parameter]) -> None:
        if param is not None and param.device.type != 'meta':
            param = nn.Parameter(param.detach().to('meta'), requires_grad=param.requires_grad)
        register(module, name, param)

    nn.Module.register_parameter = register_on_meta
    try:
        yield
    finally:
        nn.Module.register_parameter = register


def parameter_count(module: nn.Module) -> int:
    """Number of parameter elements (meta parameters included)."""
    return sum(p.numel() for p in module.parameters())


__all__ = ['empty_parameters', 'parameter_count']
