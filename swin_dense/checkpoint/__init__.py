"""Reading, detecting, converting and loading SwinV2 checkpoints."""
from .detect import detect_layout
from .load import load_pretrained, read_checkpoint, to_backbone_state_dict

__all__ = ['detect_layout', 'load_pretrained', 'read_checkpoint', 'to_backbone_state_dict']
