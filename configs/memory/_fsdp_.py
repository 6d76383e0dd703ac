"""FSDP (ZeRO stage 3: weights, gradients and optimizer state sharded) on mmengine's FlexibleRunner.

Not a runnable config: a base that a model config lists next to its own (the SwinV2-G configs do,
through ``_giant_savers_.py``)::

    _base_ = ['../upernet_swinv2_l_ade20k.py', './_fsdp_.py']

* ``runner_type``: mmengine's ``FlexibleRunner``; it builds the model and runs ``init_weights()``
  (pretrained weights included) before FSDP wraps it. ``tools/train.py`` builds it for such configs.
* ``strategy``: ``ConsolidatedFSDPStrategy`` (swin_dense.engine.fsdp): mmengine's ``FSDPStrategy``
  with one consolidated checkpoint file (rank 0 gathers the full weights and optimizer state, keyed
  by parameter name) and a working ``--resume``. ``use_orig_params=True`` keeps the parameter names
  and groups of the optimizer constructor (layer decay, ``paramwise_cfg``);
  ``swin_block_auto_wrap_policy`` makes every SwinV2 block an FSDP unit of its own, so a block's
  weights are gathered only while it runs. On machines without CUDA, ``tools/dist_train.sh`` sets
  ``model_wrapper.device_id='cpu'`` and gloo (swin_dense.cli.setup_distributed).

Needs a distributed launch (``tools/dist_train.sh CONFIG GPUS``; ``GPUS=1`` works and shards nothing).
The optimizer and its wrapper stay the model config's: FSDP shards AdamW's state with the weights.
docs/distributed.md ("FSDP") says what was measured.
"""
runner_type = 'FlexibleRunner'
strategy = dict(
    type='ConsolidatedFSDPStrategy',
    model_wrapper=dict(use_orig_params=True, auto_wrap_policy='swin_block_auto_wrap_policy'))
