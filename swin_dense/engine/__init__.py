"""Training pieces for mmengine's Runner: layer-wise lr decay, reliability hooks, safe checkpoint loading.

Importing this package does nothing by itself (``import swin_dense`` imports :mod:`.layer_decay`
through it, and must register no more than the optimizer constructor). Each module registers, in
mmengine's root registries (which mmdet's and mmseg's scopes fall back to), what it defines when
it is imported; :mod:`swin_dense.runtime` imports them all for a run:

* :mod:`.layer_decay`: ``SwinV2LayerDecayOptimizerConstructor`` (``OPTIM_WRAPPER_CONSTRUCTORS``);
* :mod:`.atomic_backend` and :mod:`.atomic_checkpoint_hook`: the ``'atomic_local'`` file backend
  (``mmengine.fileio``) and ``AtomicCheckpointHook`` (``HOOKS``): checkpoints and
  ``last_checkpoint`` written atomically, outdated ones deleted only afterwards;
* :mod:`.truncated_checkpoint`: refuses a truncated checkpoint before ``torch.load``, naming it and the
  newest complete one (used by ``AtomicCheckpointHook``);
* :mod:`.rng_state`: ``RNGStateHook`` (``HOOKS``): RNG states in checkpoints, restored on resume;
* :mod:`.nonfinite`: ``NanGuardOptimWrapper`` / ``NanGuardAmpOptimWrapper`` (``OPTIM_WRAPPERS``):
  no step from a NaN / Inf loss or gradient;
* :mod:`.zero`: ``ZeroOptimizerHook`` (``HOOKS``): checkpoints of a ZeRO-sharded optimizer
  (docs/distributed.md);
* :mod:`.fsdp`: ``swin_block_auto_wrap_policy`` (``FUNCTIONS``) and ``ConsolidatedFSDPStrategy``
  (``STRATEGIES``): FSDP on mmengine's FlexibleRunner, one unit per SwinV2 block, one consolidated
  checkpoint, ``--resume`` (docs/distributed.md, "FSDP");
* :mod:`.safe_load`: mmengine's checkpoint types under ``torch.load(weights_only=True)``, for the
  whole process (``install``, which :mod:`swin_dense.runtime` calls) or for one file (``load``);
* :mod:`.upstream`: the mmengine internals that ``AtomicCheckpointHook``, ``ZeroOptimizerHook`` and
  ``ConsolidatedFSDPStrategy`` rely on, and the version guard on them.

Import what you need from its module (``from swin_dense.engine.rng_state import RNGStateHook``).
"""
