"""Swin V1 checkpoints for mmdet's and mmseg's own ``SwinTransformer`` backbone (to compare with SwinV2).

``layouts/``: one module per source layout (official, HF, timm), each to the official V1 key scheme;
``detect``: which layout; ``arch``: the architecture read off the tensors and its key scheme;
``resize``: bias tables to another window; ``mmdet_layout``: official -> mmdet/mmseg keys;
``convert``: the pipeline, with an account of every tensor (the shared steps and the
``Conversion`` record are ``checkpoint/conversion.py``), and the file writer. Whether a file is V1
at all is ``checkpoint.detect.detect_version``.
"""
from .arch import V1Arch, infer_v1_arch
from .convert import V1ConvertResult, convert_v1_checkpoint, convert_v1_state_dict
from .detect import detect_v1_layout
from .layouts import V1_LAYOUTS
from .resize import resize_bias_table, window_of_table

__all__ = ['V1Arch', 'V1ConvertResult', 'V1_LAYOUTS', 'convert_v1_checkpoint',
           'convert_v1_state_dict', 'detect_v1_layout', 'infer_v1_arch', 'resize_bias_table', 'window_of_table']
