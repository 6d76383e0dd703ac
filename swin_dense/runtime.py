"""Switch on what runs of this package's configs need beyond the model: import this module.

``import swin_dense`` registers the backbone and the layer-decay optimizer constructor only, so a
config this project did not write can use the backbone without anything else changing. Runs of this
package's configs also use the engine pieces below; every config lists this module in its
``custom_imports`` (``configs/_base_/swin_dense_runtime.py``)::

    custom_imports = dict(imports=['swin_dense', 'swin_dense.runtime'], allow_failed_imports=False)

and the tools (``tools/train.py``, ``tools/test.py``, ...) import it themselves, so configs
written for the plain backbone run with them too. Importing it, in every (distributed) process:

* registers in mmengine's root registries ``AtomicCheckpointHook``, ``RNGStateHook``,
  ``ZeroOptimizerHook`` and ``ValidateDatasetHook`` (``HOOKS``), ``NanGuardOptimWrapper`` and
  ``NanGuardAmpOptimWrapper`` (``OPTIM_WRAPPERS``), ``ConsolidatedFSDPStrategy`` (``STRATEGIES``),
  ``swin_block_auto_wrap_policy`` (``FUNCTIONS``) and the ``'atomic_local'`` file backend
  (``mmengine.fileio``);
* adds mmengine's checkpoint types to torch's ``weights_only`` allowlist for the process
  (:func:`swin_dense.engine.safe_load.install`; nothing else in the package installs it), so that
  the Runner's own ``torch.load`` calls (``--resume``, ``load_from``) read this package's checkpoints
  without ``weights_only=False``.

Nothing here patches mmengine's or torch's code; see docs/training.md ("Reliability").
"""
from .datasets import hook as _dataset_hook  # noqa: F401  ValidateDatasetHook
from .engine import atomic_backend, atomic_checkpoint_hook, fsdp, nonfinite, rng_state, safe_load, zero  # noqa: F401

safe_load.install()

__all__: list = []
