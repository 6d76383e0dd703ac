"""Source layouts of SwinV2 weights, each converted to the official key scheme.

Every layout module defines ``NAME``, ``matches(state_dict) -> bool`` and
``to_official(state_dict) -> state_dict``. The official scheme is the microsoft/Swin-Transformer
one (``layers.{i}.downsample`` at the end of stage i, final ``norm``, ``head``), which is also this
package's backbone layout apart from ``norm`` -> ``norm3``.
"""
from . import official, timm

# Checked in this order by detect_layout: the more specific layouts first.
LAYOUTS = {m.NAME: m for m in (timm, official)}

__all__ = ['LAYOUTS']
