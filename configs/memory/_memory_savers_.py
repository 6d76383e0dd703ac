"""The SwinV2 paper's memory savers (ZeRO, activation checkpointing, sequential attention) in mmengine terms.

Not a runnable config: a shared base that ``configs/memory/*_zero.py`` and
``configs/sample/*_zero.py`` inherit *next to* their model config, so that the full-size configs and
the CPU-sized test config apply exactly the same settings (see docs/distributed.md)::

    _base_ = ['../upernet_swinv2_l_ade20k.py', './_memory_savers_.py']
    optim_wrapper = dict(optimizer=_base_.zero_optimizer)      # AdamW -> ZeRO-sharded AdamW
    model = dict(backbone=_base_.memory_saving_backbone)        # activation checkpointing + chunks

(mmengine refuses a key that two bases both define, so the settings live under their own names and
the child merges them into ``optim_wrapper`` / ``model``; the two names stay in the dumped config.
``custom_hooks`` is inherited as it is: no model config of this package defines it.)

* ``zero_optimizer``: mmengine's ``ZeroRedundancyOptimizer`` (torch's, built from the optimizer's
  name): ZeRO stage 1. Each data-parallel rank keeps AdamW's two moment buffers only for its own
  share (about 1/world size) of the parameters, updates that share and broadcasts it. Merged into
  an ``optimizer=dict(type='AdamW', lr=..., ...)`` it keeps the lr, betas and weight decay; every
  parameter group of the optim-wrapper constructor (``paramwise_cfg``, layer-wise lr decay) is
  kept. Needs a distributed run (``tools/dist_train.sh``, also with 1 GPU). Numerically it is
  DDP + AdamW (measured bit-identical in a 2-process CPU run).
* ``custom_hooks``: ``ZeroOptimizerHook`` (swin_dense.engine) makes checkpoint saving work with
  ZeRO under mmengine's Runner (every rank joins the gather of the optimizer shards, rank 0 writes
  the file) and logs each rank's share of the optimizer state. Checkpoints hold the full
  (consolidated) state, so ``--resume`` works, with any number of ranks.
* ``memory_saving_backbone``: ``with_cp=True`` recomputes each SwinV2 block in the backward pass
  instead of keeping its activations (the paper's activation checkpointing; costs one more forward
  pass of the backbone per step); ``attn_chunk_size=32`` and ``mlp_chunk_size=32`` are the
  backbone's sequential mode (the paper's sequential self-attention): attention on 32 windows and
  the MLP on 32 x window² tokens at a time, each chunk checkpointed, so no whole-map attention
  matrix or MLP hidden layer exists at once. Together they cut the SwinV2-L backbone's
  training-step peak from 10.1 to 1.8 GiB (2 x 640x640) and from 26.0 to 2.3 GiB (2 x 800x1344).
"""
# ZeRO stage 1 around the config's AdamW (``optimizer_type`` names a torch.optim class).
zero_optimizer = dict(type='ZeroRedundancyOptimizer', optimizer_type='AdamW')
# Activation checkpointing per block; sequential mode with 32 windows per attention call and
# 32 windows' tokens per MLP call.
memory_saving_backbone = dict(with_cp=True, attn_chunk_size=32, mlp_chunk_size=32)
# Every rank joins ZeRO's optimizer-state gather when a checkpoint is saved (mmengine 0.10's
# Runner.save_checkpoint runs on rank 0 only); rank 0 writes the full state.
custom_hooks = [dict(type='ZeroOptimizerHook')]
