"""Source layouts of SwinV2 weights, each converted to the official key scheme.

Every layout module defines ``NAME``, ``matches(state_dict) -> bool`` and
``to_official(state_dict) -> state_dict``. The official scheme is the microsoft/Swin-Transformer
one (``layers.{i}.downsample`` at the end of stage i, final ``norm``, ``head``), which is also this
package's backbone layout apart from ``norm`` -> ``norm{last}``. Layouts rename and merge but never
drop a key: keys that are not backbone weights (heads, buffers, decoders) keep a recognisable name
and are dropped, and counted, by ``convert.convert_state_dict``.
"""
from . import hf, mmpretrain, official, simmim, timm

# Checked in this order by detect_layout; official (the plain scheme) last.
LAYOUTS = {m.NAME: m for m in (hf, mmpretrain, simmim, timm, official)}

__all__ = ['LAYOUTS']
