"""Optimizer wrappers that never apply a step computed from a NaN / Inf loss or gradient.

``NanGuardOptimWrapper`` (mmengine's ``OptimWrapper``) and ``NanGuardAmpOptimWrapper`` (mmengine's
``AmpOptimWrapper``, which ``tools/train.py --amp`` selects for it) check the loss in
``update_params``, *before* backward and the optimizer step, every iteration:

* ``on_nonfinite='stop'`` (default): raise :class:`NonFiniteLossError` naming the iteration. The
  weights and the optimizer state are those after the previous step, and no checkpoint is written
  after the failure, so the last checkpoint on disk is a good one to resume from.
* ``on_nonfinite='skip'``: drop this batch (no backward, no step: weights, optimizer moments and
  the AMP loss scale stay as they were), log a warning with the running count (also kept in the
  message hub as ``nonfinite_skips``, saved in checkpoints), and go on. More than
  ``max_consecutive_skips`` non-finite iterations in a row raise :class:`NonFiniteLossError`: a run
  that keeps producing NaN has diverged, and skipping forever would only hide it.

A finite loss can still give non-finite gradients. Without AMP, ``NanGuardOptimWrapper`` checks the
gradients' max-norm before the step and treats a non-finite one like a non-finite loss. With AMP
that check is the ``GradScaler``'s own: it skips such steps and lowers the loss scale, which is the
normal working of dynamic loss scaling (the scale starts at 2**16 and overflows early on), not a
failure.

In distributed runs the loss check is agreed between all ranks (one all-reduce of a flag), so all
ranks skip or stop together; a rank that skipped its backward alone would deadlock the others in
DDP's gradient all-reduce.

Why not mmdet's ``CheckInvalidLossHook``: it asserts ``isfinite(loss)`` in ``after_train_iter``, i.e.
after the optimizer has already applied the NaN gradients to the weights (and to Adam's moments),
and only every ``interval`` (50) iterations; the weights are NaN from the first bad iteration on, and
any checkpoint written before the next check holds them.
"""
import logging
import math
from typing import Any, Dict, Optional

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.logging import MessageHub, print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS

ON_NONFINITE = ('stop', 'skip')
#: message-hub runtime info key of the number of skipped iterations (saved in checkpoints)
SKIPS_KEY = 'nonfinite_skips'


class NonFiniteLossError(RuntimeError):
    """Training met a NaN / Inf loss or gradient (the step was not applied)."""


class NanGuard:
    """The check, shared by the two wrappers below (put it before the ``OptimWrapper`` class in the bases).

    Args:
        on_nonfinite: 'stop' (raise :class:`NonFiniteLossError`) or 'skip' (drop the batch).
        max_consecutive_skips: with 'skip', the most consecutive non-finite iterations tolerated;
            one more raises :class:`NonFiniteLossError`.
        **kwargs: the ``OptimWrapper`` / ``AmpOptimWrapper`` arguments.
    """

    def __init__(self, *, on_nonfinite: str = 'stop', max_consecutive_skips: int = 10, **kwargs: Any) -> None:
        if on_nonfinite not in ON_NONFINITE:
            raise ValueError(f'optim_wrapper.on_nonfinite must be one of {ON_NONFINITE}, got {on_nonfinite!r}')
        if int(max_consecutive_skips) < 1:
            raise ValueError(f'optim_wrapper.max_consecutive_skips must be >= 1, got {max_consecutive_skips}')
        super().__init__(**kwargs)
        self.on_nonfinite = on_nonfinite
        self.max_consecutive_skips = int(max_consecutive_skips)
        self._consecutive_skips = 0
        self._window_has_grads = False  # a finite batch was backpropagated since the last step

    def update_params(self, loss: torch.Tensor, step_kwargs: Optional[Dict] = None,
                      zero_kwargs: Optional[Dict] = None) -> None:
        """``OptimWrapper.update_params`` (scale, backward, step at the accumulation boundary) with the checks.

        A skipped batch still counts towards ``accumulative_counts``, so the accumulation windows
        stay aligned; at the window's end the step uses the finite batches of the window, or is left
        out when there were none.
        """
        rejected = False
        if self._all_ranks_finite(loss):
            self.backward(self.scale_loss(loss))
            self._window_has_grads = True
        else:
            value = loss.detach().float().item()
            self._reject(f'loss ({value})' if not math.isfinite(value) else f'loss on another rank (here {value:.4g})')
            self._inner_count += 1  # what backward() would have counted
            rejected = True
        if self.should_update():
            if self._window_has_grads:
                if self._gradients_finite():
                    self.step(**(step_kwargs or {}))
                else:
                    self._reject('gradient (max |grad| is not finite)')
                    rejected = True
            self.zero_grad(**(zero_kwargs or {}))
            self._window_has_grads = False
        if not rejected:
            self._consecutive_skips = 0

    def _gradients_finite(self) -> bool:
        """Whether every gradient is finite on every rank: their max-norm (no overflow, NaN propagates) is.

        Under ZeRO or FSDP each rank holds only its own shards, so the ranks agree through a reduction.
        """
        grads = [p.grad for group in self.optimizer.param_groups for p in group['params'] if p.grad is not None]
        if not grads:
            return self._on_every_rank(torch.tensor(True))
        return self._on_every_rank(torch.isfinite(torch.nn.utils.get_total_norm(grads, norm_type=float('inf'))))

    @classmethod
    def _all_ranks_finite(cls, loss: torch.Tensor) -> bool:
        """``isfinite(loss)`` on this rank and, in distributed runs, on every rank."""
        return cls._on_every_rank(torch.isfinite(loss.detach()).all())

    @staticmethod
    def _on_every_rank(flag: torch.Tensor) -> bool:
        """A boolean scalar's AND over all ranks (this rank's value outside distributed runs)."""
        if get_world_size() > 1:
            flag = flag.to(torch.float32)
            all_reduce(flag, op='min')
            return bool(flag.item() > 0)
        return bool(flag)

    def _reject(self, what: str) -> None:
        """Stop, or count a skip (stopping after too many in a row); ``what`` is e.g. 'loss (nan)'."""
        hub = MessageHub.get_current_instance()
        where = _iteration(hub)
        if self.on_nonfinite == 'stop':
            last_ckpt = hub.get_info('last_ckpt')
            kept = (f' The last checkpoint, {last_ckpt}, was written before and is intact: continue from it with '
                    '`tools/train.py CONFIG --resume` after the change.') if last_ckpt else ''
            raise NonFiniteLossError(
                f'non-finite {what} at {where}; training stopped before the optimizer step, so the '
                f'weights are still those of the previous iteration.{kept} Usual fixes: a lower learning rate or a '
                'longer warm-up, gradient clipping (optim_wrapper.clip_grad=dict(max_norm=...)), --amp-dtype '
                'bfloat16 instead of float16; or set optim_wrapper.on_nonfinite=skip to drop such iterations.')
        self._consecutive_skips += 1
        total = int(hub.get_info(SKIPS_KEY, 0)) + 1
        hub.update_info(SKIPS_KEY, total)
        if self._consecutive_skips > self.max_consecutive_skips:
            raise NonFiniteLossError(
                f'non-finite {what} at {where}: {self._consecutive_skips} non-finite iterations in a row, '
                f'more than optim_wrapper.max_consecutive_skips={self.max_consecutive_skips}; training has diverged. '
                'Lower the learning rate, lengthen the warm-up or clip gradients, and resume from the last checkpoint.')
        print_log(f'non-finite {what} at {where}: the step is skipped (weights unchanged); '
                  f'{total} skipped in this run, {self._consecutive_skips} in a row '
                  f'(at most {self.max_consecutive_skips} allowed)', logger='current', level=logging.WARNING)


def _iteration(hub: MessageHub) -> str:
    """'iteration k/N' (1-based, as the training log and checkpoint names count), from the message hub."""
    it = hub.get_info('iter')
    if it is None:
        return 'an unknown iteration'
    total = hub.get_info('max_iters')
    return f'iteration {it + 1}' + (f'/{total}' if total else '')


@OPTIM_WRAPPERS.register_module()
class NanGuardOptimWrapper(NanGuard, OptimWrapper):
    """mmengine's ``OptimWrapper`` with the NaN / Inf checks of :class:`NanGuard`."""


@OPTIM_WRAPPERS.register_module()
class NanGuardAmpOptimWrapper(NanGuard, AmpOptimWrapper):
    """mmengine's ``AmpOptimWrapper`` with the NaN / Inf loss check of :class:`NanGuard`."""

    def _gradients_finite(self) -> bool:
        """Always true: ``GradScaler.step`` itself skips steps with non-finite (scaled) gradients."""
        return True


__all__ = ['NanGuard', 'NanGuardAmpOptimWrapper', 'NanGuardOptimWrapper', 'NonFiniteLossError', 'ON_NONFINITE',
           'SKIPS_KEY']
