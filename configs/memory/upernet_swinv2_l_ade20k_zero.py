"""UPerNet + SwinV2-L on ADE20K (../upernet_swinv2_l_ade20k.py) with the SwinV2 paper's memory savers.

Only what ``_memory_savers_.py`` holds changes; model, data, schedule and numerics are those of
the base config (ZeRO's update is AdamW's, rank by rank; activation checkpointing and chunked
attention recompute / split the same operations):

* ZeRO stage 1: AdamW's two moment buffers sharded over the ranks. UPerNet + SwinV2-L has 234 M
  parameters: 1.74 GiB of AdamW state on every GPU without ZeRO, at most 0.28 GiB per GPU with it
  on 8 GPUs.
* ``with_cp=True`` (each block recomputed in the backward pass), ``attn_chunk_size=32`` and
  ``mlp_chunk_size=32`` (sequential mode: attention on 32 windows, the MLP on 32 x 400 tokens at a
  time; stage 0 of a 640x640 crop has 64 windows per image): the peak of the backbone's fp32
  training step on 2 crops drops from 10.13 GiB to 1.79 GiB, its largest tensor from 469 MiB to
  234 MiB.
* ``custom_hooks=[dict(type='ZeroOptimizerHook')]``: checkpoints with the gathered optimizer state.

(All numbers measured; see docs/distributed.md.)

Needs a distributed launch (ZeRO shards over the ranks)::

    bash tools/dist_train.sh configs/memory/upernet_swinv2_l_ade20k_zero.py 8 \
        --cfg-options model.backbone.init_cfg.checkpoint=/path/to/swinv2_large_patch4_window12_192_22k.pth

Checkpoints hold the full (consolidated) optimizer state; ``--resume`` works with any number of
GPUs.
"""
_base_ = ['../upernet_swinv2_l_ade20k.py', './_memory_savers_.py']

optim_wrapper = dict(optimizer=_base_.zero_optimizer)
model = dict(backbone=_base_.memory_saving_backbone)
