"""Source layouts of Swin V1 weights, each brought to the official microsoft/Swin-Transformer V1 key scheme.

Every layout module defines ``NAME``, ``matches(state_dict) -> bool`` and
``to_official(state_dict) -> state_dict``, as the SwinV2 layouts do (``checkpoint/layouts``). The
official V1 scheme: ``patch_embed.{proj,norm}``, ``layers.{i}.blocks.{j}.{norm1,attn.qkv,
attn.relative_position_bias_table,attn.proj,norm2,mlp.fc1,mlp.fc2}``, ``layers.{i}.downsample.
{norm,reduction}`` at the end of stage i (norm over the 4C concat, then the reduction), final
``norm``, ``head``. Layouts rename and merge but never drop a key; heads and buffers are dropped,
and counted, by ``v1.convert``.
"""
from . import hf, official, timm

# Checked in this order by detect_v1_layout; official (the plain scheme) last.
V1_LAYOUTS = {m.NAME: m for m in (hf, timm, official)}

__all__ = ['V1_LAYOUTS']
