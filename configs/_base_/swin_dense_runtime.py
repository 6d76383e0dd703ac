"""What every config of this package runs with: swin_dense's runtime pieces and the reliability hooks.

Not a runnable config: a base that ``cascade_swinv2_t_coco.py`` and ``upernet_swinv2_t_ade20k.py``
(and so every config that inherits them) list next to mmdet's / mmseg's bases.

* ``custom_imports``: ``swin_dense`` registers the backbone and the layer-decay optimizer
  constructor; ``swin_dense.runtime`` the hooks and optimizer wrappers below, the ``'atomic_local'``
  file backend, and mmengine's checkpoint types in torch's ``weights_only`` allowlist (so that
  ``--resume`` and ``load_from`` read this package's checkpoints); ``swin_dense.models.det_tta``
  ``InstanceSegTTAModel``, the ``tta_model`` of the detection configs (so that mmdet's own test.py
  ``--tta`` finds it too; docs/detection.md, "TTA"). See docs/training.md.
* ``reliability_hooks`` (docs/training.md#reliability): checkpoints and ``last_checkpoint`` written
  atomically, outdated checkpoints deleted only after the new one is complete
  (``AtomicCheckpointHook`` + the ``atomic_local`` backend); RNG states saved in checkpoints for an
  exact ``--resume`` (``RNGStateHook``). mmengine refuses a key that two bases define, and mmdet's
  and mmseg's runtime bases define ``default_hooks``, so the hooks live under their own name; each
  config merges them into its ``default_hooks``::

      default_hooks = _base_.reliability_hooks

  (the detection config adds its checkpoint policy to the checkpoint hook). They are default hooks,
  not custom ones: ``configs/memory/_memory_savers_.py``, a second base of some configs, defines
  ``custom_hooks``.
"""
custom_imports = dict(imports=['swin_dense', 'swin_dense.runtime', 'swin_dense.models.det_tta'],
                      allow_failed_imports=False)

reliability_hooks = dict(
    checkpoint=dict(type='AtomicCheckpointHook', backend_args=dict(backend='atomic_local')),
    rng_state=dict(type='RNGStateHook'))
