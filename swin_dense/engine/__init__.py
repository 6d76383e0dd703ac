"""Training pieces the configs use: layer-wise lr decay, safe checkpoint loading, reliability hooks.

Importing this package registers, in mmengine's root registries (which mmdet's and mmseg's scopes
fall back to):

* ``SwinV2LayerDecayOptimizerConstructor`` (``OPTIM_WRAPPER_CONSTRUCTORS``);
* the ``'atomic_local'`` file backend (``mmengine.fileio``) and ``AtomicCheckpointHook`` (``HOOKS``):
  checkpoints and ``last_checkpoint`` written atomically, outdated ones deleted only afterwards;
* ``RNGStateHook`` (``HOOKS``): RNG states in checkpoints, restored on resume;
* ``NanGuardOptimWrapper`` / ``NanGuardAmpOptimWrapper`` (``OPTIM_WRAPPERS``): no step from a
  NaN / Inf loss or gradient;
* ``ZeroOptimizerHook`` (``HOOKS``): checkpoints of a ZeRO-sharded optimizer (docs/distributed.md);

and allows mmengine's checkpoint types under ``torch.load(weights_only=True)`` (see
:mod:`swin_dense.engine.safe_load`).
"""
from .atomic_backend import AtomicLocalBackend, atomic_write, remove_partial_files
from .atomic_checkpoint_hook import AtomicCheckpointHook
from .layer_decay import SwinV2LayerDecayOptimizerConstructor, swinv2_layer_id
from .nonfinite import NanGuardAmpOptimWrapper, NanGuardOptimWrapper, NonFiniteLossError
from .rng_state import RNGStateHook, get_rng_state, set_rng_state
from .safe_load import install as install_safe_load
from .safe_load import safe_globals
from .zero import ZeroOptimizerHook, local_state_bytes, zero_optimizers

install_safe_load()

__all__ = ['AtomicCheckpointHook', 'AtomicLocalBackend', 'NanGuardAmpOptimWrapper', 'NanGuardOptimWrapper',
           'NonFiniteLossError', 'RNGStateHook', 'SwinV2LayerDecayOptimizerConstructor', 'atomic_write',
           'get_rng_state', 'install_safe_load', 'remove_partial_files', 'safe_globals', 'set_rng_state',
           'swinv2_layer_id', 'ZeroOptimizerHook', 'local_state_bytes', 'zero_optimizers']
