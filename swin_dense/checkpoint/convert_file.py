"""Convert a checkpoint file of either Swin version, write it with its meta, and report what was done.

:func:`convert_checkpoint` reads a file safely, detects the Swin version and sends SwinV2 to
:func:`~swin_dense.checkpoint.convert.convert_state_dict` (recording the ``pretrained_window_size``
the checkpoint needs, see ``windows.py``) and Swin V1 to ``v1.convert_v1_checkpoint``. It is what
``tools/convert_checkpoint.py`` runs.
"""
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from ..arch import per_stage
from .conversion import Conversion
from .convert import convert_state_dict, to_official_state_dict
from .detect import SWIN_V1, detect_version
from .layouts import LAYOUTS
from .read import read_checkpoint, write_checkpoint
from .v1 import V1_LAYOUTS, V1ConvertResult, convert_v1_checkpoint
from .windows import META_PRETRAINED_WINDOW, pretrained_window_from_name

__all__ = ['ConvertResult', 'DST_FORMATS', 'convert_checkpoint']

DST_FORMATS = ('backbone', 'official')


@dataclass
class ConvertResult:
    """What :func:`convert_checkpoint` did with a SwinV2 file: the conversion, the meta written and notes."""

    conversion: Conversion
    meta: Dict[str, Any]
    pretrained_window_source: str
    notes: List[str]

    def report(self, dst: str, dst_format: str) -> List[str]:
        """Lines for the command line: layout, architecture, pretrained window, coverage, config."""
        conv = self.conversion
        window = f'; trained windows {conv.trained_window}' if conv.trained_window else ''
        pretrained = self.meta.get(META_PRETRAINED_WINDOW)
        lines = ['version: Swin V2',
                 f'layout: {conv.layout}',
                 f'architecture: {conv.arch.describe()}{window}',
                 f'pretrained_window_size: {pretrained} ({self.pretrained_window_source})' if pretrained is not None
                 else f'pretrained_window_size: unknown ({self.pretrained_window_source})',
                 f'coverage: {conv.coverage()}']
        lines += [f'note: {note}' for note in self.notes]
        lines.append(f'wrote {dst} ({dst_format} layout)')
        if dst_format == 'backbone':
            pws = f', pretrained_window_size={pretrained}' if pretrained is not None else ''
            lines.append(f"backbone config: arch={conv.arch.config()}{pws}, "
                         f"init_cfg=dict(type='Pretrained', checkpoint='{dst}')")
        return lines


def convert_checkpoint(src: str, dst: str, src_format: str = 'auto',
                       pretrained_window_size: Optional[Sequence[int]] = None,
                       dst_format: str = 'backbone',
                       window_size: Optional[int] = None) -> Union[ConvertResult, V1ConvertResult]:
    """Read ``src`` safely, convert it and write ``dst`` with the meta the backbone checks on load.

    The Swin version is detected from the keys (``detect.detect_version``) unless ``src_format``
    names a V1 layout: SwinV2 goes to :class:`SwinTransformerV2`'s layout (below), Swin V1 to the
    layout of mmdet's / mmseg's ``SwinTransformer`` (:func:`v1.convert_v1_checkpoint`).

    Args:
        src: ``.pth``/``.pt``/``.bin``/``.safetensors`` file or Hugging Face model folder.
        dst: output file; ``.safetensors`` writes safetensors, anything else a ``.pth`` dict
            (Swin V1: ``.pth`` only, as mmdet/mmseg read it with ``torch.load``).
        src_format: ``'auto'``, a SwinV2 layout name (``LAYOUTS``) or a Swin V1 one (``V1_LAYOUTS``).
        pretrained_window_size: SwinV2 only; overrides every other source of the pretrained window
            (one value for all stages, or one per stage).
        dst_format: ``'backbone'`` (for ``init_cfg``) or, SwinV2 only, ``'official'``
            (microsoft/Swin-Transformer keys, ``{'model': ...}``).
        window_size: Swin V1 only; resize every ``relative_position_bias_table`` to this window.

    Returns:
        SwinV2: the conversion, the meta written, where the pretrained window came from and notes;
        Swin V1: a :class:`V1ConvertResult`. Both have ``report(dst, dst_format)``.

    Raises:
        FileNotFoundError, CheckpointError (incl. NotSwinV2Checkpoint), ValueError: see messages.
    """
    if dst_format not in DST_FORMATS:
        raise ValueError(f'unknown destination format {dst_format!r}; use one of {DST_FORMATS}')
    if src_format not in ('auto', *LAYOUTS, *V1_LAYOUTS):
        raise ValueError(f'unknown source format {src_format!r}; use auto, a SwinV2 layout ({", ".join(LAYOUTS)}) '
                         f'or a Swin V1 layout ({", ".join(V1_LAYOUTS)})')
    if os.path.abspath(src) == os.path.abspath(dst):
        raise ValueError(f'destination {dst!r} is the source; write the converted checkpoint to another file')
    state_dict, src_meta = read_checkpoint(src)
    if src_format in V1_LAYOUTS or (src_format == 'auto' and detect_version(state_dict) == SWIN_V1):
        if pretrained_window_size is not None:
            raise ValueError('pretrained_window_size (--pretrained-window-size) is a SwinV2 setting and this is a Swin '
                             'V1 checkpoint; to use V1 weights at another window pass window_size (--window-size)')
        if dst_format != 'backbone':
            raise ValueError(f'dst_format {dst_format!r} is for SwinV2; a Swin V1 checkpoint is written in the '
                             "layout of mmdet's / mmseg's SwinTransformer only (dst_format 'backbone')")
        return convert_v1_checkpoint(state_dict, src, dst, src_format, window_size)
    if window_size is not None:
        raise ValueError('window_size (--window-size) resizes the position bias tables of Swin V1 checkpoints; this '
                         'is SwinV2, whose position bias MLP runs at any window: set window_size in the backbone '
                         'config and keep the pretrained_window_size the converter records')
    conv = convert_state_dict(state_dict, src_format)
    windows, origin, notes = _pretrained_window(src, src_meta, conv, pretrained_window_size)
    meta: Dict[str, Any] = dict(source=os.path.basename(os.path.normpath(src)), source_layout=conv.layout,
                                arch=conv.arch.config())
    if windows is not None:
        meta[META_PRETRAINED_WINDOW] = windows
    if conv.trained_window is not None:
        meta['trained_window_size'] = conv.trained_window
    if dst_format == 'official':
        write_checkpoint(to_official_state_dict(conv.state_dict), dst, meta, wrapper='model')
    else:
        write_checkpoint(conv.state_dict, dst, meta)
    return ConvertResult(conv, meta, origin, notes)


def _pretrained_window(src: str, src_meta: Dict[str, Any], conv: Conversion,
                       override: Optional[Sequence[int]]) -> Tuple[Optional[List[int]], str, List[str]]:
    """(per-stage window or None, where it came from, notes). Flag > checkpoint evidence > file name."""
    num_stages = conv.arch.num_stages
    by_name = pretrained_window_from_name(src) if num_stages == 4 else None
    if conv.coords_pretrained_window is not None:
        evidence, origin = conv.coords_pretrained_window, 'from the coordinate tables stored in the checkpoint'
    elif src_meta.get(META_PRETRAINED_WINDOW) is not None:
        evidence = per_stage(src_meta[META_PRETRAINED_WINDOW], num_stages, 'pretrained window')
        origin = 'from config.json' if os.path.isdir(src) else 'from the checkpoint meta'
    else:
        evidence, origin = None, ''
    notes = []
    if evidence is not None and by_name is not None and evidence != by_name:
        notes.append(f'the file name suggests pretrained_window_size={by_name} but the checkpoint says {evidence} '
                     f'({origin}); using {evidence}. Pass --pretrained-window-size to choose.')
    if override is not None:
        return per_stage(override, num_stages, '--pretrained-window-size'), 'from --pretrained-window-size', notes
    if evidence is not None:
        return evidence, origin, notes
    if by_name is not None:
        return by_name, 'from the released-checkpoint table, by file name', notes
    return None, ('no coordinate table, config or known file name tells it: pass --pretrained-window-size with the '
                  'window(s) the checkpoint was trained at, or the backbone cannot warn about a wrong setting'), notes
