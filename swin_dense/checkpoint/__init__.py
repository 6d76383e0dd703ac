"""Reading, detecting, converting and loading SwinV2 checkpoints, and converting Swin V1 ones for mmdet/mmseg.

``read``: safe file IO; ``layouts/``: one module per SwinV2 source layout; ``detect``: which Swin
version and which layout; ``convert``: any layout -> backbone layout with an account of every
tensor (and back to official), and the file-to-file :func:`convert_checkpoint` for both versions;
``windows``: the pretrained window a checkpoint needs; ``load``: into :class:`SwinTransformerV2`;
``v1/``: Swin V1 (official, HF, timm) -> mmdet's / mmseg's ``SwinTransformer``; ``common`` and
``merging``: bookkeeping and patch-merging channel orders shared by both.
"""
from .convert import Conversion, convert_checkpoint, convert_state_dict, to_official_state_dict
from .detect import detect_layout, detect_version
from .errors import CheckpointError, NotSwinV2Checkpoint, SwinV1Checkpoint
from .load import load_pretrained, to_backbone_state_dict
from .read import read_checkpoint, write_checkpoint
from .v1 import V1Conversion, convert_v1_state_dict, resize_bias_table

__all__ = ['CheckpointError', 'Conversion', 'NotSwinV2Checkpoint', 'SwinV1Checkpoint', 'V1Conversion',
           'convert_checkpoint', 'convert_state_dict', 'convert_v1_state_dict', 'detect_layout', 'detect_version',
           'load_pretrained', 'read_checkpoint', 'resize_bias_table', 'to_backbone_state_dict',
           'to_official_state_dict', 'write_checkpoint']
