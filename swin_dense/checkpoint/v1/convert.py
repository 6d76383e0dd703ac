"""Convert Swin V1 checkpoints (official, HF, timm) for mmdet's/mmseg's ``SwinTransformer``, accounting for each tensor.

:func:`convert_v1_state_dict` runs the pipeline on a state dict:

1. a whole model (keys ``backbone.*``): keep the backbone, count everything else as dropped;
2. detect the V1 layout and rename/merge to the official V1 key scheme (``v1/layouts/``);
3. drop what is no backbone weight, counted per reason (``conversion.DROP_RULES``): window buffers
   (``relative_position_index``, ``attn_mask``), classification head, masked-image-modeling tensors;
4. optionally resize every ``relative_position_bias_table`` to another window (``resize.py``);
5. read the architecture off the tensors and check the keys: one with no place in the backbone or a
   missing one raises, so nothing is dropped silently;
6. rename to the mmdet/mmseg layout, reorder the patch-merging channels, final ``norm`` ->
   ``norm{last}``, add the other output norms (``mmdet_layout.py``).

:func:`convert_v1_checkpoint` does it to a file that mmdet's and mmseg's ``SwinTransformer`` load
through ``init_cfg=dict(type='Pretrained', checkpoint=...)``: ``{'state_dict': {'backbone.' + key:
tensor}, 'meta': {...}}`` (mmdet keeps only ``backbone.`` keys, mmseg takes both).
"""
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import torch

from ..conversion import Conversion, check_keys, keep_backbone, split_backbone
from ..detect import resolve_layout
from ..read import write_checkpoint
from .arch import TABLE, infer_v1_arch
from .detect import detect_v1_layout
from .layouts import V1_LAYOUTS
from .mmdet_layout import to_mmdet
from .resize import resize_bias_table, window_of_table

VERSION_LINE = 'version: Swin V1 (relative_position_bias_table, no cpb_mlp / logit_scale)'
DESTINATION = "mmdet/mmseg SwinTransformer"
_UNSUPPORTED = 'a Swin V1 variant not converted here (absolute position embedding, another head or norm)'


def convert_v1_state_dict(state_dict: Dict[str, torch.Tensor], layout: str = 'auto',
                          window_size: Optional[int] = None) -> Conversion:
    """Convert a Swin V1 state dict of any known layout to the mmdet/mmseg ``SwinTransformer`` layout.

    Args:
        state_dict: as read by :func:`read_checkpoint`.
        layout: ``'auto'`` (detect) or a key of ``V1_LAYOUTS``.
        window_size: resize every ``relative_position_bias_table`` ((2W-1)^2, heads) to this window
            ((2*window_size-1)^2, heads), bicubic as mmdet/mmseg do; None keeps the trained window.

    Returns:
        the conversion: ``state_dict`` in mmdet's / mmseg's keys, ``added`` the output norms it has no
        source for, ``trained_window`` each stage's window before any resize.

    Raises:
        CheckpointError: no V1 layout matches or the given one does not, tensors with no place in
            the backbone, missing ones, or bias tables of different windows without ``window_size``.
        ValueError: an unknown layout name or a window below 1.
    """
    source, dropped = split_backbone(state_dict)
    layout = resolve_layout(source, layout, V1_LAYOUTS, detect_v1_layout, 'Swin V1')
    official = keep_backbone(V1_LAYOUTS[layout].to_official(source), dropped)
    trained = {k: window_of_table(v, k) for k, v in official.items() if k.endswith('relative_position_bias_table')}
    if window_size is not None:
        if window_size < 1:
            raise ValueError(f'window_size must be a positive int, got {window_size}')
        official = {k: resize_bias_table(v, window_size) if k in trained else v for k, v in official.items()}
    arch = infer_v1_arch(official)
    check_keys(official, arch, layout, DESTINATION, _UNSUPPORTED)
    out, added = to_mmdet(official, arch)
    return Conversion(out, layout, arch, DESTINATION, len(state_dict), dropped, added,
                      trained_window=[trained[TABLE.format(i, 0)] for i in range(arch.num_stages)])


@dataclass
class V1ConvertResult:
    """What :func:`convert_v1_checkpoint` did: the conversion, the meta written and notes for the user."""

    conversion: Conversion
    meta: Dict[str, Any]
    notes: List[str]

    def report(self, dst: str, dst_format: str = 'backbone') -> List[str]:
        """Lines for the command line: version, layout, architecture, coverage, added keys, notes, config."""
        conv = self.conversion
        added = ', '.join(sorted({k.rsplit('.', 1)[0] for k in conv.added}))
        lines = [VERSION_LINE,
                 f'layout: {conv.layout}',
                 f'architecture: {conv.arch.describe()}',
                 f'coverage: {conv.coverage()}']
        if conv.added:
            lines.append(f'added: {len(conv.added)} tensors, output norms {added} (LayerNorm weight 1, bias 0, as '
                         f'mmdet/mmseg initialise them: the checkpoint has only the final norm, which became '
                         f'norm{conv.arch.num_stages - 1})')
        lines += [f'note: {note}' for note in self.notes]
        lines.append(f"wrote {dst} ({DESTINATION} layout, keys 'backbone.*')")
        config = ', '.join(f'{k}={v}' for k, v in conv.arch.config().items())
        lines.append(f"backbone config: dict(type='SwinTransformer', {config}, "
                     f"init_cfg=dict(type='Pretrained', checkpoint='{dst}'))")
        return lines


def convert_v1_checkpoint(state_dict: Dict[str, torch.Tensor], src: str, dst: str, layout: str = 'auto',
                          window_size: Optional[int] = None) -> V1ConvertResult:
    """Convert a Swin V1 state dict read from ``src`` and write ``dst`` for mmdet/mmseg ``SwinTransformer``.

    Args:
        state_dict: read from ``src`` by :func:`read_checkpoint`.
        src: the source path (for the meta).
        dst: a ``.pth`` file: ``{'state_dict': {'backbone.' + key: tensor}, 'meta': {...}}``.
        layout: ``'auto'`` or a key of ``V1_LAYOUTS``.
        window_size: resize the bias tables to this window (see :func:`convert_v1_state_dict`).

    Raises:
        ValueError: a ``.safetensors`` destination (mmdet/mmseg read checkpoints with torch.load).
        CheckpointError: see :func:`convert_v1_state_dict`.
    """
    if dst.endswith('.safetensors'):
        raise ValueError(f'{dst!r}: mmdet/mmseg SwinTransformer reads its checkpoint with torch.load (mmengine '
                         'CheckpointLoader), which cannot read safetensors; write a .pth')
    conv = convert_v1_state_dict(state_dict, layout, window_size)
    trained, new = sorted(set(conv.trained_window)), conv.arch.window_size
    meta: Dict[str, Any] = dict(source=os.path.basename(os.path.normpath(src)), source_layout=conv.layout,
                                version='v1', arch=conv.arch.config(), added=list(conv.added),
                                trained_window_size=trained[0] if len(trained) == 1 else trained)
    if trained != [new]:
        old = ' and '.join(f'{w} ({(2 * w - 1) ** 2} rows)' for w in trained)
        notes = [f'resized every relative_position_bias_table from window {old} to window {new} '
                 f'({(2 * new - 1) ** 2} rows) by bicubic interpolation; mmdet/mmseg SwinTransformer would do the same '
                 'resize at load time if it were not done here']
    else:
        notes = [f'trained at window {new}: use window_size={new}, or pass --window-size W to resize the bias tables '
                 'here (mmdet/mmseg would resize them the same way, bicubic, at load time)']
    write_checkpoint({'backbone.' + k: v for k, v in conv.state_dict.items()}, dst, meta)
    return V1ConvertResult(conv, meta, notes)
