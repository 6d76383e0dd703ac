"""``ZeroOptimizerHook``: checkpoints and a shard report for a ZeRO-sharded optimizer under mmengine's Runner.

mmengine's ``ZeroRedundancyOptimizer`` (torch's ZeRO stage 1, built from an optimizer name) gathers
its sharded state for a checkpoint in ``state_dict()`` with ``consolidate_state_dict()``, a
collective that every rank has to join. mmengine 0.10's ``Runner.save_checkpoint`` is
``@master_only``, so only rank 0 enters it and waits in the gather for ranks that never come (a
hang with NCCL; "Connection closed by peer" once the other ranks exit, with gloo).

With the hook in the config (``configs/memory/_memory_savers_.py`` adds it)::

    custom_hooks = [dict(type='ZeroOptimizerHook')]

every rank takes part in the gather and rank 0 alone writes the checkpoint, which then holds the
full optimizer state in torch's consolidated format: ``--resume`` works, with any number of ranks.
After the first iteration each rank also logs the share of the parameters it updates and the bytes
of optimizer state it holds (rank 0 on the console; every rank in its own log file with
``log_level='DEBUG'``). Without a ZeroRedundancyOptimizer, or outside a distributed run, the hook
does nothing.

mmengine has no public extension point for "every rank takes part in saving", so the hook gives the
runner instance its own ``save_checkpoint`` (the class's method runs unchanged on rank 0). What
that relies on in mmengine is listed and guarded in :mod:`swin_dense.engine.upstream`: the hook
refuses to switch on under another mmengine than the one it was checked against, and
``tests/engine/test_upstream.py`` fails when the source of those methods changes.
"""
import inspect
from types import MethodType
from typing import List

import torch
from mmengine.dist import get_rank, get_world_size, is_distributed, is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS
from mmengine.runner import Runner

from .upstream import check_mmengine

try:
    from torch.distributed.optim import ZeroRedundancyOptimizer
except ImportError:  # torch built without distributed support
    ZeroRedundancyOptimizer = None


def zero_optimizers(optim_wrapper) -> List:
    """The ZeroRedundancyOptimizers of an ``OptimWrapper`` or ``OptimWrapperDict``."""
    if ZeroRedundancyOptimizer is None or optim_wrapper is None:
        return []
    wrappers = optim_wrapper.values() if hasattr(optim_wrapper, 'values') else [optim_wrapper]
    return [w.optimizer for w in wrappers if isinstance(getattr(w, 'optimizer', None), ZeroRedundancyOptimizer)]


def local_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of the (non-scalar) state tensors an optimizer holds: AdamW's exp_avg and exp_avg_sq."""
    return sum(v.numel() * v.element_size() for state in optimizer.state.values() for v in state.values()
               if torch.is_tensor(v) and v.dim() > 0)


@HOOKS.register_module()
class ZeroOptimizerHook(Hook):
    """Let mmengine's Runner save checkpoints with a ZeroRedundancyOptimizer; report each rank's shard.

    Rank 0 runs ``Runner.save_checkpoint`` unchanged: it builds the checkpoint, whose
    ``optim_wrapper.state_dict()`` gathers the shards, and writes the file. The other ranks only
    call ``optim_wrapper.state_dict()``, their part of the same gather, and write nothing. (Rank 0
    runs no other collective in ``save_checkpoint``, so the calls pair up.)
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._reported = False

    def before_train(self, runner) -> None:
        if not is_distributed() or not zero_optimizers(getattr(runner, 'optim_wrapper', None)):
            return
        if not isinstance(runner, Runner) or type(runner).save_checkpoint is not Runner.save_checkpoint:
            raise TypeError(f'ZeroOptimizerHook works with mmengine.runner.Runner; {type(runner).__name__} has its own '
                            'save_checkpoint. Remove the hook from custom_hooks (FlexibleRunner strategies save '
                            'sharded optimizers themselves).')
        check_mmengine('ZeroOptimizerHook')
        save_on_rank0 = MethodType(Runner.save_checkpoint, runner)  # the class's @master_only method: rank 0 only
        signature = inspect.signature(save_on_rank0)

        def save_checkpoint(*args, **kwargs):
            if is_main_process():
                return save_on_rank0(*args, **kwargs)
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            if bound.arguments['save_optimizer']:
                runner.optim_wrapper.state_dict()  # this rank's part of the gather; rank 0 writes
            return None

        runner.save_checkpoint = save_checkpoint  # an instance attribute: CheckpointHook calls it on every rank
        print_log('ZeroOptimizerHook: every rank joins the optimizer-state gather of a checkpoint; rank 0 writes it',
                  logger='current')

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self._reported or not is_distributed():
            return
        self._reported = True
        for zero in zero_optimizers(runner.optim_wrapper):
            total = sum(p.numel() for group in zero.param_groups for p in group['params'])
            local = sum(p.numel() for group in zero.optim.param_groups for p in group['params'])
            print_log(f'ZeroOptimizerHook: rank {get_rank()} of {get_world_size()} updates {local} of {total} '
                      f'parameters ({local / max(total, 1):.1%}) and holds {local_state_bytes(zero.optim)} bytes '
                      'of optimizer state', logger='current')


__all__ = ['ZeroOptimizerHook', 'zero_optimizers', 'local_state_bytes']
