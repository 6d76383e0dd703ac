"""SwinV2-G's memory savers: FSDP, activation checkpointing, sequential attention in the first two stages.

Not a runnable config: a shared base of configs/htcpp_swinv2_g_coco.py and
configs/upernet_swinv2_g_ade20k.py, listed next to their model config (mmengine refuses a key that two
bases both define, so the backbone settings have their own name and the child merges them in).

* ``runner_type`` and ``strategy``: those of ``_fsdp_.py``: FSDP on mmengine's FlexibleRunner, one
  unit per SwinV2 block, one consolidated checkpoint, ``--resume``. The fp32 weights and gradients of
  SwinV2-G alone are 12 GB each, which ZeRO stage 1 (``_memory_savers_.py``) keeps whole on every GPU;
  FSDP shards them too.
* ``giant_backbone``: ``with_cp=True`` and sequential attention on 32 windows at a time in stages 0
  and 1 only (the issue's reading of the paper's section 3.4: the first stages, where windows are many
  and maps large), no MLP chunking (the paper describes none). docs/benchmarks.md measures what each
  setting saves. Activation checkpointing stays the backbone's own (each FSDP unit is recomputed in
  the backward pass; measured equal to training without it under FSDP, docs/distributed.md).
"""
_base_ = ['./_fsdp_.py']
giant_backbone = dict(with_cp=True, attn_chunk_size=[32, 32, 0, 0], mlp_chunk_size=0)
