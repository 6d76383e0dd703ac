"""Training pieces for mmengine's Runner: layer-wise lr decay, reliability hooks, safe checkpoint loading.

Importing this package does nothing by itself (``import swin_dense`` imports :mod:`.layer_decay`
through it, and must register no more than the optimizer constructor). Each module registers, in
mmengine's root registries (which mmdet's and mmseg's scopes fall back to), what it defines when
it is imported; :mod:`swin_dense.runtime` imports them all for a run:

* :mod:`.layer_decay`: ``SwinV2LayerDecayOptimizerConstructor`` (``OPTIM_WRAPPER_CONSTRUCTORS``);
* :mod:`.atomic_backend` and :mod:`.atomic_checkpoint_hook`: the ``'atomic_local'`` file backend
  (``mmengine.fileio``) and ``AtomicCheckpointHook`` (``HOOKS``): checkpoints and
  ``last_checkpoint`` written atomically, outdated ones deleted only afterwards;
* :mod:`.rng_state`: ``RNGStateHook`` (``HOOKS``): RNG states in checkpoints, restored on resume;
* :mod:`.nonfinite`: ``NanGuardOptimWrapper`` / ``NanGuardAmpOptimWrapper`` (``OPTIM_WRAPPERS``):
  no step from a NaN / Inf loss or gradient;
* :mod:`.zero`: ``ZeroOptimizerHook`` (``HOOKS``): checkpoints of a ZeRO-sharded optimizer
  (docs/distributed.md);
* :mod:`.safe_load`: mmengine's checkpoint types under ``torch.load(weights_only=True)``, for the
  whole process (``install``, which :mod:`swin_dense.runtime` calls) or for one file (``load``);
* :mod:`.upstream`: the mmengine internals that ``AtomicCheckpointHook`` and ``ZeroOptimizerHook``
  rely on, and the version guard on them.

The names below are importable from this package as before (``from swin_dense.engine import
RNGStateHook``); each is imported from its module on first use.
"""
import importlib
from typing import Any, List

#: exported name -> (module, name in that module)
_EXPORTS = {
    'AtomicCheckpointHook': ('atomic_checkpoint_hook', 'AtomicCheckpointHook'),
    'AtomicLocalBackend': ('atomic_backend', 'AtomicLocalBackend'),
    'atomic_write': ('atomic_backend', 'atomic_write'),
    'remove_partial_files': ('atomic_backend', 'remove_partial_files'),
    'NanGuardAmpOptimWrapper': ('nonfinite', 'NanGuardAmpOptimWrapper'),
    'NanGuardOptimWrapper': ('nonfinite', 'NanGuardOptimWrapper'),
    'NonFiniteLossError': ('nonfinite', 'NonFiniteLossError'),
    'RNGStateHook': ('rng_state', 'RNGStateHook'),
    'get_rng_state': ('rng_state', 'get_rng_state'),
    'set_rng_state': ('rng_state', 'set_rng_state'),
    'SwinV2LayerDecayOptimizerConstructor': ('layer_decay', 'SwinV2LayerDecayOptimizerConstructor'),
    'install_safe_load': ('safe_load', 'install'),
    'safe_globals': ('safe_load', 'safe_globals'),
    'ZeroOptimizerHook': ('zero', 'ZeroOptimizerHook'),
    'local_state_bytes': ('zero', 'local_state_bytes'),
    'zero_optimizers': ('zero', 'zero_optimizers'),
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    module, attr = _EXPORTS[name]
    return getattr(importlib.import_module(f'.{module}', __name__), attr)


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = sorted(_EXPORTS)
