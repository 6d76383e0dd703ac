"""FSDP for SwinV2 through mmengine's ``FlexibleRunner``: one FSDP unit per ``SwinBlockV2``, one checkpoint file.

mmengine 0.10.7 builds the model, runs ``init_weights()`` and only then wraps it
(``SingleDeviceStrategy.prepare``), so pretrained and initialised weights are in place before FSDP
flattens them. This module adds, through mmengine's registries (``configs/memory/_fsdp_.py``)::

    runner_type = 'FlexibleRunner'
    strategy = dict(type='ConsolidatedFSDPStrategy',
                    model_wrapper=dict(use_orig_params=True, auto_wrap_policy='swin_block_auto_wrap_policy'))

* ``swin_block_auto_wrap_policy`` (``FUNCTIONS``, where ``MMFullyShardedDataParallel`` looks a policy
  name up): every SwinV2 block is an FSDP unit of its own, gathered for its forward and backward
  only; the rest of the model (patch embedding, patch merging, output norms, neck, heads) forms the
  root unit. A block is the unit because its attention and MLP read their weights inside one
  ``forward``; a size-based policy cut the ``qkv`` Linear out of the block (docs/distributed.md, "FSDP").
* ``ConsolidatedFSDPStrategy`` (``STRATEGIES``): mmengine's ``FSDPStrategy`` with full state dicts by
  default (rank 0 writes one ordinary checkpoint file with the whole model and optimizer state under
  the model's own parameter names, which ``tools/test.py``, ``load_from`` and the converters read like
  any other), and with ``--resume`` working: mmengine 0.10.7 calls
  ``FSDP.optim_state_dict_to_load(state_dict, model, optimizer)``, the argument order of torch < 2.1;
  torch >= 2.1 takes ``(model, optim, optim_state_dict)``, and the old order fails with
  "unhashable type: 'dict'". The override is guarded in :mod:`.upstream`.
"""
from typing import Set, Type, Union

import torch.nn as nn
from mmengine._strategy import FSDPStrategy
from mmengine.registry import FUNCTIONS, STRATEGIES
from torch.distributed.fsdp import FullyShardedDataParallel
from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

from ..layers.swin_block import SwinBlockV2
from .upstream import check_mmengine

#: the module classes that become FSDP units of their own
FSDP_UNITS: Set[Type[nn.Module]] = {SwinBlockV2}


@FUNCTIONS.register_module()
def swin_block_auto_wrap_policy(module: nn.Module, recurse: bool, nonwrapped_numel: int) -> bool:
    """torch's ``transformer_auto_wrap_policy`` with :data:`FSDP_UNITS`: wrap every ``SwinBlockV2``.

    Args:
        module: the module FSDP's auto-wrap visits.
        recurse: True while FSDP asks whether to descend into ``module``; False when it asks whether
            to wrap it.
        nonwrapped_numel: parameters of ``module`` not yet wrapped (unused by this policy).
    """
    return transformer_auto_wrap_policy(module, recurse, nonwrapped_numel, transformer_layer_cls=FSDP_UNITS)


@STRATEGIES.register_module()
class ConsolidatedFSDPStrategy(FSDPStrategy):
    """mmengine's ``FSDPStrategy`` that saves one full checkpoint file and resumes from it.

    Args:
        state_dict_cfg: as ``FSDPStrategy``'s, but ``'full'`` by default: the whole state dict of the
            model and the optimizer, gathered on rank 0 and written there as one file.
        **kwargs: ``FSDPStrategy``'s (``model_wrapper``, ``skip_init_weights``, ...).

    Raises:
        RuntimeError: when built under an mmengine other than
            :data:`~swin_dense.engine.upstream.VERIFIED_MMENGINE`.
    """

    def __init__(self, *, state_dict_cfg: Union[str, dict] = 'full', **kwargs) -> None:
        check_mmengine('ConsolidatedFSDPStrategy')
        super().__init__(state_dict_cfg=state_dict_cfg, **kwargs)

    def load_optim_state_dict(self, state_dict: dict) -> None:
        """Load an optimizer state dict saved by :meth:`optim_state_dict` (full: keyed by parameter name).

        ``FSDPStrategy.load_optim_state_dict`` with torch's current argument order: every rank turns
        the full state into the state of its own shards, then the optimizer wrapper loads it.
        """
        local = FullyShardedDataParallel.optim_state_dict_to_load(
            model=self.model, optim=self.optim_wrapper.optimizer, optim_state_dict=state_dict)
        self.optim_wrapper.load_state_dict(local)


__all__ = ['ConsolidatedFSDPStrategy', 'FSDP_UNITS', 'swin_block_auto_wrap_policy']
