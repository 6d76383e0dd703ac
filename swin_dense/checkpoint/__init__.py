"""Reading, detecting and converting SwinV2 checkpoints, and converting Swin V1 ones for mmdet/mmseg.

Everything here works on files and state dicts, never on modules: it imports only
``swin_dense.arch``, ``swin_dense.layers`` and its own modules (the backbone loads through
``models/backbones/pretrained.py``, which uses this package).

``read``: the one safe file reader and writer; ``layouts/``: one module per SwinV2 layout, to and
from the official key scheme; ``detect``: which Swin version and which layout; ``conversion``: the
steps and the :class:`Conversion` record both versions share; ``convert``: any SwinV2 layout ->
backbone layout (and back to official); ``convert_file``: :func:`convert_checkpoint`, file to file
for both versions; ``windows``: the pretrained window a checkpoint needs; ``fit``: does a state dict
fit a model; ``stem``: the architecture every Swin state dict tells; ``keys``: key lists in
messages; ``merging``: patch-merging channel orders; ``v1/``: Swin V1 (official, HF, timm) ->
mmdet's / mmseg's ``SwinTransformer``.
"""
from .conversion import Conversion
from .convert import convert_state_dict, to_backbone_state_dict, to_official_state_dict
from .convert_file import ConvertResult, convert_checkpoint
from .detect import detect_layout, detect_version
from .errors import CheckpointError, NotSwinV2Checkpoint, SwinV1Checkpoint
from .fit import Fit, fit_state_dict
from .keys import short_keys
from .layouts import LAYOUTS, from_official_state_dict
from .read import read_checkpoint, write_checkpoint
from .v1 import V1ConvertResult, convert_v1_state_dict, resize_bias_table

__all__ = ['CheckpointError', 'Conversion', 'ConvertResult', 'Fit', 'LAYOUTS', 'NotSwinV2Checkpoint',
           'SwinV1Checkpoint', 'V1ConvertResult', 'convert_checkpoint', 'convert_state_dict', 'convert_v1_state_dict',
           'detect_layout', 'detect_version', 'fit_state_dict', 'from_official_state_dict', 'read_checkpoint',
           'resize_bias_table', 'short_keys', 'to_backbone_state_dict', 'to_official_state_dict', 'write_checkpoint']
