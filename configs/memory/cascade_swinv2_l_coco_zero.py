"""Cascade Mask R-CNN + SwinV2-L on COCO (../cascade_swinv2_l_coco.py) with the SwinV2 paper's memory savers.

Only what ``_memory_savers_.py`` holds changes; model, data, schedule, the layer-wise lr decay and
numerics are those of the base config:

* ZeRO stage 1: AdamW's two moment buffers sharded over the ranks. torch's
  ZeroRedundancyOptimizer keeps every parameter group of ``SwinV2LayerDecayOptimizerConstructor``
  (one per parameter, each with its own lr scale and weight decay). Cascade Mask R-CNN + SwinV2-L
  has 254 M parameters: 1.89 GiB of AdamW state on every GPU without ZeRO, at most 0.29 GiB per
  GPU with it on 8 GPUs.
* ``with_cp=True`` (off in the base config), ``attn_chunk_size=32`` and ``mlp_chunk_size=32``
  (sequential mode: attention on 32 windows, the MLP on 32 x 256 tokens at a time; an 800x1344
  image has 273 windows of 16x16 in stage 0): the peak of the backbone's fp32 training step on 2
  images padded to 800x1344 drops from 25.96 GiB (neither, the base config) to 2.32 GiB (4.20 GiB
  with activation checkpointing alone), its largest tensor from 819 MiB to 192 MiB.
* ``custom_hooks=[dict(type='ZeroOptimizerHook')]``: checkpoints with the gathered optimizer state.

(All numbers measured; see docs/distributed.md.)

Needs a distributed launch (ZeRO shards over the ranks)::

    bash tools/dist_train.sh configs/memory/cascade_swinv2_l_coco_zero.py 8 \
        --cfg-options pretrained=/path/to/swinv2_large_patch4_window12_192_22k.pth

Checkpoints hold the full (consolidated) optimizer state; ``--resume`` works with any number of
GPUs.
"""
_base_ = ['../cascade_swinv2_l_coco.py', './_memory_savers_.py']

optim_wrapper = dict(optimizer=_base_.zero_optimizer)
model = dict(backbone=_base_.memory_saving_backbone)
