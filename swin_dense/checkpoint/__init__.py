"""Reading, detecting, converting and loading SwinV2 checkpoints.

``read``: safe file IO; ``layouts/``: one module per source layout; ``detect``: which layout;
``convert``: any layout -> backbone layout with an account of every tensor (and back to official);
``windows``: the pretrained window a checkpoint needs; ``load``: into :class:`SwinTransformerV2`.
"""
from .convert import Conversion, convert_checkpoint, convert_state_dict, to_official_state_dict
from .detect import detect_layout
from .errors import CheckpointError, NotSwinV2Checkpoint
from .load import load_pretrained, to_backbone_state_dict
from .read import read_checkpoint, write_checkpoint

__all__ = ['CheckpointError', 'Conversion', 'NotSwinV2Checkpoint', 'convert_checkpoint', 'convert_state_dict',
           'detect_layout', 'load_pretrained', 'read_checkpoint', 'to_backbone_state_dict', 'to_official_state_dict',
           'write_checkpoint']
