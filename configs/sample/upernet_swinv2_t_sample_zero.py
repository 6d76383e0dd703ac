"""The tiny UPerNet + SwinV2 sample with the memory savers of configs/memory/*_zero.py.

Exactly the settings of ``configs/memory/upernet_swinv2_l_ade20k_zero.py`` (both inherit
``configs/memory/_memory_savers_.py``) on a model small enough for a 2-process CPU run:
ZeRO-sharded AdamW, activation checkpointing and chunked window attention. It needs a
distributed launch (ZeRO shards over the ranks)::

    bash tools/dist_train.sh configs/sample/upernet_swinv2_t_sample_zero.py 2

See docs/distributed.md.
"""
_base_ = ['./upernet_swinv2_t_sample.py', '../memory/_memory_savers_.py']

optim_wrapper = dict(optimizer=_base_.zero_optimizer)
model = dict(backbone=_base_.memory_saving_backbone)
