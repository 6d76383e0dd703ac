"""``RNGStateHook``: checkpoints carry the random number generators' states, so a resumed run is exact.

mmengine checkpoints hold the model, optimizer, schedulers and logs, but not the state of the
random number generators. After ``--resume`` the run re-seeds from ``randomness.seed`` and then
draws different random numbers than the uninterrupted run would have: other DropPath / dropout
masks (torch), other augmentations (numpy, ``random``), so the final weights differ.

This hook stores, in ``before_save_checkpoint``, the states of torch's CPU generator, every CUDA
device's generator (when CUDA is in use), numpy's global ``RandomState`` and Python's ``random``
under ``checkpoint['rng_state']``. Everything is a tensor, an int, a float, a string or ``None``,
so the checkpoint still loads under ``torch.load(weights_only=True)`` with no addition to the
allowlist of :mod:`swin_dense.engine.safe_load`.

When to restore. The states are taken when the checkpoint is written, right after training
iteration ``k`` (``after_train_iter``), and must be back in place exactly where the uninterrupted run
would continue: before batch ``k + 1`` is fetched. How the loops resume decides where that is:

* ``IterBasedTrainLoop`` (the ADE20K configs) fast-forwards by drawing ``k`` batches from the data
  loader and throwing them away, so that the sampler order and the data workers' own generators
  advance as in the uninterrupted run. With ``num_workers=0`` those ``k`` batches are augmented in
  this process and draw from the very generators being restored, so restoring before the skip
  would be undone by it. The hook therefore wraps the loop's data iterator for the skip and restores
  the states right after the ``k``-th discarded batch, just before the first batch that is trained on.
* ``EpochBasedTrainLoop`` (the COCO configs) starts the next epoch from its sampler's seed and epoch,
  without a skip: the states are restored in ``before_train``.

Validation inside training also draws random numbers (creating the validation data iterator draws
a base seed from torch's generator), between the checkpoint and the next training batch. The hook
saves the states in ``before_val`` and puts them back in ``after_val``, so validation never moves
the training streams: results do not depend on ``val_interval``, and a run resumed from a
checkpoint written at a validation step continues exactly.

The states are restored only when the run resumes (the loop continues at the checkpoint's
iteration); ``load_from`` (fine-tuning from a checkpoint, starting at iteration 0) keeps the fresh
seed. Limits, documented in docs/training.md: the data order is the sampler's, seeded with
``randomness.seed``, so that must be set (the hook warns if the sampler's seed differs from the
checkpoint's); in distributed runs the checkpoint holds rank 0's states (only rank 0 writes it),
which only rank 0 restores; persistent data workers of an epoch-based loop restart their
generators from their seeds.
"""
import random
from typing import Any, Dict, Iterator, List, Optional

import numpy as np
import torch
from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import IterBasedTrainLoop

CHECKPOINT_KEY = 'rng_state'

RNGState = Dict[str, Any]


def get_rng_state() -> RNGState:
    """The states of torch (CPU and, when initialised, every CUDA device), numpy and ``random``.

    Only tensors, ints, floats, strings and ``None``: safe for ``torch.load(weights_only=True)``.
    """
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_internal, py_gauss_next = random.getstate()
    cuda: List[torch.Tensor] = []
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda = torch.cuda.get_rng_state_all()
    return {
        'torch': torch.get_rng_state(),
        'cuda': cuda,
        'numpy': {'kind': np_kind, 'keys': torch.from_numpy(np_keys.astype(np.int64)), 'pos': int(np_pos),
                  'has_gauss': int(np_has_gauss), 'gauss': float(np_gauss)},
        'python': {'version': int(py_version), 'internal': torch.tensor(py_internal, dtype=torch.int64),
                   'gauss_next': py_gauss_next},
    }


def set_rng_state(state: RNGState) -> None:
    """Restore what :func:`get_rng_state` returned.

    Raises:
        ValueError: if the checkpoint's CUDA states do not match the visible devices (resuming on
            another number of GPUs per process); restore on the same setup or drop ``rng_state``.
    """
    torch.set_rng_state(state['torch'].cpu())
    if state['cuda']:
        if not torch.cuda.is_available() or torch.cuda.device_count() != len(state['cuda']):
            visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
            raise ValueError(f'the checkpoint holds the RNG states of {len(state["cuda"])} CUDA device(s) but this '
                             f'process sees {visible}; resume with the same devices per process, or without restoring '
                             'the RNG states: --cfg-options default_hooks.rng_state.restore=False')
        torch.cuda.set_rng_state_all([s.cpu() for s in state['cuda']])
    np_state = state['numpy']
    np.random.set_state((np_state['kind'], np_state['keys'].numpy().astype(np.uint32), np_state['pos'],
                         np_state['has_gauss'], np_state['gauss']))
    py_state = state['python']
    random.setstate((py_state['version'], tuple(py_state['internal'].tolist()), py_state['gauss_next']))


class _RestoreAfterSkip:
    """Stands in for ``IterBasedTrainLoop.dataloader_iterator`` while the loop skips trained batches.

    Passes ``skip`` batches through, then restores ``state`` and puts the loop's iterator back,
    before the first batch the resumed run trains on is fetched.
    """

    def __init__(self, loop: IterBasedTrainLoop, skip: int, state: RNGState) -> None:
        self._loop = loop
        self._inner = loop.dataloader_iterator
        self._remaining = skip
        self._state = state

    def __iter__(self) -> Iterator:
        return self

    def __next__(self) -> Any:
        if self._remaining == 0:
            set_rng_state(self._state)
            self._loop.dataloader_iterator = self._inner
        else:
            self._remaining -= 1
        return next(self._inner)


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save the RNG states into every checkpoint and restore them when training resumes.

    The V2 base configs add it as ``default_hooks.rng_state = dict(type='RNGStateHook')``. It runs
    last in ``before_train`` (``LOWEST`` priority), so no other hook draws random numbers between
    the restore and the training steps.

    Args:
        restore: restore the states on resume. ``False`` (``--cfg-options
            default_hooks.rng_state.restore=False``) still saves them but resumes as plain mmengine
            does, from the seed: for a checkpoint written with another number of CUDA devices per
            process, or to measure what the restore changes.
    """

    priority = 'LOWEST'

    def __init__(self, restore: bool = True) -> None:
        self.restore = restore
        self._pending: Optional[Dict[str, Any]] = None
        self._val_state: Optional[RNGState] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Add ``checkpoint['rng_state']``: the training streams' states.

        During validation (``CheckpointHook`` re-saves the latest checkpoint when the best score
        improves) those are the states from before validation, which :meth:`after_val` brings back.
        """
        checkpoint[CHECKPOINT_KEY] = self._val_state if self._val_state is not None else get_rng_state()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Keep the loaded states; :meth:`before_train` decides whether this is a resume."""
        meta = checkpoint.get('meta', {})
        self._pending = {'state': checkpoint.get(CHECKPOINT_KEY), 'iter': meta.get('iter'),
                         'epoch': meta.get('epoch'), 'seed': meta.get('seed')}

    def before_train(self, runner) -> None:
        """On resume, restore the states now (epoch-based loop) or after the loop's skip (iteration-based)."""
        pending, self._pending = self._pending, None
        if not self.restore or pending is None or runner.iter == 0 or (runner.iter, runner.epoch) != (pending['iter'], pending['epoch']):
            return  # a fresh run, or load_from: the run starts from the seed
        state = pending['state']
        if state is None:
            runner.logger.warning(f'the resumed checkpoint has no "{CHECKPOINT_KEY}" (written without RNGStateHook): '
                                  'the random streams restart from the seed, so the run will not match an '
                                  'uninterrupted one')
            return
        self._check_sampler_seed(runner, pending['seed'])
        if get_world_size() > 1:
            runner.logger.warning('distributed run: the checkpoint holds rank 0\'s RNG states, restored on rank 0 '
                                  'only; the other ranks continue from the seed')
            if get_rank() != 0:
                return
        loop = runner.train_loop
        if isinstance(loop, IterBasedTrainLoop):
            loop.dataloader_iterator = _RestoreAfterSkip(loop, loop.iter, state)
            runner.logger.info(f'RNG states of iteration {loop.iter} will be restored after the loop skips the '
                               f'{loop.iter} batches already trained on')
        else:
            set_rng_state(state)
            runner.logger.info(f'restored the RNG states of epoch {runner.epoch}, iteration {runner.iter}')

    def before_val(self, runner) -> None:
        """Remember the training streams' states before validation."""
        self._val_state = get_rng_state()

    def after_val(self, runner) -> None:
        """Put the training streams back as they were before validation."""
        if self._val_state is not None:
            set_rng_state(self._val_state)
            self._val_state = None

    @staticmethod
    def _check_sampler_seed(runner, checkpoint_seed: Optional[int]) -> None:
        """Warn when the training sampler was seeded differently from the checkpoint's run."""
        loader = runner.train_dataloader
        batch_sampler = getattr(loader, 'batch_sampler', None)
        sampler = getattr(batch_sampler, 'sampler', None) or getattr(loader, 'sampler', None)
        seed = getattr(sampler, 'seed', None)
        if seed is not None and checkpoint_seed is not None and seed != checkpoint_seed:
            runner.logger.warning(f'the training sampler is seeded with {seed} but the checkpoint\'s run used '
                                  f'{checkpoint_seed}: the data order will differ from the uninterrupted run. Set '
                                  f'`randomness.seed` in the config (e.g. --cfg-options randomness.seed='
                                  f'{checkpoint_seed}) for an exact resume')


__all__ = ['CHECKPOINT_KEY', 'RNGStateHook', 'get_rng_state', 'set_rng_state']
