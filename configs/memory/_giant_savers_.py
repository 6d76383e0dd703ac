"""SwinV2-G's memory savers: ZeRO stage 1, activation checkpointing, sequential attention in the first two stages.

Not a runnable config: a shared base of configs/htcpp_swinv2_g_coco.py and
configs/upernet_swinv2_g_ade20k.py, applied as configs/memory/_memory_savers_.py is (mmengine refuses a key
that two bases both define, so the settings have their own names and the child merges them in).

* ``zero_optimizer`` and ``custom_hooks``: those of ``_memory_savers_.py`` (ZeRO-sharded AdamW; every rank
  joins the gather of a checkpoint, rank 0 writes one file).
* ``giant_backbone``: ``with_cp=True`` and sequential attention on 32 windows at a time in stages 0
  and 1 only (the issue's reading of the paper's section 3.4: the first stages, where windows are many
  and maps large), no MLP chunking (the paper describes none). docs/benchmarks.md measures what each
  setting saves.
"""
_base_ = ['./_memory_savers_.py']
giant_backbone = dict(with_cp=True, attn_chunk_size=[32, 32, 0, 0], mlp_chunk_size=0)
