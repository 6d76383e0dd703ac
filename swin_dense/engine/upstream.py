"""The mmengine internals three engine pieces rely on, pinned to the mmengine they were checked against.

mmengine has no public extension point for two things this package does, and one method to mend:

* :class:`~swin_dense.engine.atomic_checkpoint_hook.AtomicCheckpointHook`: the order in which
  ``CheckpointHook`` deletes the outdated checkpoint, writes the new one and writes ``last_checkpoint``
  (with a plain ``open``) is fixed inside the private ``CheckpointHook._save_checkpoint_with_step``,
  which the hook re-implements; ``_save_checkpoint`` and ``_save_best_checkpoint`` are its callers,
  so a renamed method would be bypassed without a sound.
* :class:`~swin_dense.engine.zero.ZeroOptimizerHook`: ``Runner.save_checkpoint`` is ``@master_only``,
  so the hook gives the runner its own ``save_checkpoint``. That is only right while rank 0's
  ``save_checkpoint`` calls ``optim_wrapper.state_dict()`` once (with ``save_optimizer``) and runs no
  other collective, while ``ZeroRedundancyOptimizer.state_dict`` is the gather every rank joins,
  and while ``CheckpointHook`` calls ``runner.save_checkpoint`` on every rank.
* :class:`~swin_dense.engine.fsdp.ConsolidatedFSDPStrategy`: ``FSDPStrategy.load_optim_state_dict``
  calls torch's ``FSDP.optim_state_dict_to_load`` with the argument order of torch < 2.1, so
  ``--resume`` fails; the strategy (a registered subclass, chosen in the config) re-implements it.

All three are guarded twice. At run time, :func:`check_mmengine` (called when the hooks are built or
switched on) refuses any mmengine but :data:`VERIFIED_MMENGINE` with a message that says what to
re-check. In the tests, ``tests/engine/test_upstream.py`` compares the source of every entry of
:data:`GUARDED` with the sha256 recorded here, so raising the mmengine pin fails loudly until
someone has read the new code and updated the record.
"""
import hashlib
import importlib
import inspect
from typing import Any, Dict, Tuple

import mmengine

#: the mmengine version whose internals were read
VERIFIED_MMENGINE = '0.10.7'

#: dotted name -> (sha256 of ``inspect.getsource`` under :data:`VERIFIED_MMENGINE`, what relies on it)
GUARDED: Dict[str, Tuple[str, str]] = {
    'mmengine.hooks.CheckpointHook._save_checkpoint_with_step': (
        'cdbc1b54c7c88d9525ab025a9d51a3d3be6e6e36396c0f1151ecf51281fd3482',
        'AtomicCheckpointHook re-implements it (save, then last_checkpoint atomically, then prune)'),
    'mmengine.hooks.CheckpointHook._save_checkpoint': (
        'ec62a0a4f987522f99c63299bc648d92f4674fbfafddd0aeaf74604547eb2c17',
        'calls _save_checkpoint_with_step, which AtomicCheckpointHook overrides'),
    'mmengine.hooks.CheckpointHook._save_best_checkpoint': (
        '8e1e477297ea08d7125b641c662fc44f5023556b72059986b043b4f147e03f26',
        'calls _save_checkpoint_with_step, which AtomicCheckpointHook overrides'),
    'mmengine.runner.Runner.load_or_resume': (
        '9c653d074f9216315d8fe9fb6db0e24e7bbcd386b4f5dfb9d8932be55bb6e68b',
        'AtomicCheckpointHook.before_run picks the checkpoint to check from _has_loaded, _resume and _load_from as it does'),
    'mmengine.runner.Runner.save_checkpoint': (
        'e154ecbf826a9ba656f3b5a2ccb912699f8488bfe77cc80dabed1517026ae83d',
        'ZeroOptimizerHook: rank 0 calls optim_wrapper.state_dict() once and no other collective'),
    'mmengine.optim.ZeroRedundancyOptimizer.state_dict': (
        'b55910ba1f0c5473b0cd994999c30bde92e5c1ab346ab3cc2fa4af652c51affc',
        'ZeroOptimizerHook: the gather of the optimizer shards that every rank joins'),
    'mmengine._strategy.fsdp.FSDPStrategy.load_optim_state_dict': (
        'cd4df4cbc6655fa1f77e6c298437a30d5a42732b7419d9da06e68548c02d27db',
        'ConsolidatedFSDPStrategy re-implements it with the argument order of torch >= 2.1'),
}


def resolve(dotted: str) -> Any:
    """The object a dotted name such as ``'mmengine.runner.Runner.save_checkpoint'`` names."""
    parts = dotted.split('.')
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module('.'.join(parts[:split]))
        except ImportError:
            continue
        for attr in parts[split:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(f'cannot import any module of {dotted!r}')


def source_sha256(dotted: str) -> str:
    """sha256 of the source of a guarded object (decorators included, ``@master_only`` unwrapped)."""
    return hashlib.sha256(inspect.getsource(resolve(dotted)).encode('utf-8')).hexdigest()


def check_mmengine(user: str) -> None:
    """Raise unless the installed mmengine is :data:`VERIFIED_MMENGINE`.

    Args:
        user: what relies on the internals, for the message (e.g. ``'AtomicCheckpointHook'``).
    """
    if mmengine.__version__ != VERIFIED_MMENGINE:
        relied_on = '; '.join(f'{name} ({why})' for name, (_, why) in GUARDED.items() if user in why)
        raise RuntimeError(
            f'{user} relies on internals of mmengine {VERIFIED_MMENGINE} ({relied_on}), but mmengine '
            f'{mmengine.__version__} is installed. Install mmengine=={VERIFIED_MMENGINE} (setup.py pins it), or read '
            'the new code of these methods, adapt swin_dense/engine, and update VERIFIED_MMENGINE and the hashes in '
            'swin_dense/engine/upstream.py (tests/engine/test_upstream.py prints them).')


__all__ = ['GUARDED', 'VERIFIED_MMENGINE', 'check_mmengine', 'resolve', 'source_sha256']
