"""Convert SwinV2 checkpoints of every known layout to the backbone layout, accounting for every tensor.

(Swin V1 checkpoints are converted by the ``v1`` subpackage; :func:`convert_checkpoint` sends them there.)

:func:`convert_state_dict` runs the pipeline on a state dict:

1. a whole model (keys ``backbone.*``): keep the backbone, count everything else as dropped;
2. detect the layout and rename/merge to the official key scheme (``layouts/``);
3. drop what is no backbone weight, counted per reason: window buffers, classification head,
   masked-image-modeling mask token and decoder;
4. final ``norm`` -> ``norm{last}`` (the last stage's output norm);
5. check the result against the key scheme of the architecture read off the tensors: a key with no
   place in :class:`SwinTransformerV2` or a missing one raises, so nothing is dropped silently.

:func:`convert_checkpoint` does it file to file and records the ``pretrained_window_size`` the
checkpoint needs in the written meta (see ``windows.py``). The backbone layout is the official key
scheme plus output norms ``norm{i}``; :func:`to_official_state_dict` goes back.
"""
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple, Union

import torch

from ..arch import arch_name, per_stage
from .common import (DROP_RULES, OUTSIDE_BACKBONE, StemArch, coverage_line, drop_reason, read_stem, resolve_layout,
                     short, split_backbone)
from .detect import SWIN_V1, detect_layout, detect_version
from .errors import CheckpointError
from .layouts import LAYOUTS
from .read import read_checkpoint, write_checkpoint
from .v1 import V1_LAYOUTS, V1ConvertResult, convert_v1_checkpoint
from .windows import (pretrained_window_from_coords, pretrained_window_from_name,
                      trained_windows)

__all__ = ['Arch', 'Conversion', 'ConvertResult', 'DROP_RULES', 'DST_FORMATS', 'META_PRETRAINED_WINDOW',
           'OUTSIDE_BACKBONE', 'backbone_keys', 'convert_checkpoint', 'convert_state_dict', 'infer_arch',
           'to_official_state_dict']

META_PRETRAINED_WINDOW = 'pretrained_window_size'
DST_FORMATS = ('backbone', 'official')
_STAGE = re.compile(r'^layers\.(\d+)\.')
_BLOCK_KEYS = ('norm1.weight', 'norm1.bias', 'attn.qkv.weight', 'attn.logit_scale', 'attn.cpb_mlp.0.weight',
               'attn.cpb_mlp.0.bias', 'attn.cpb_mlp.2.weight', 'attn.proj.weight', 'attn.proj.bias', 'norm2.weight',
               'norm2.bias', 'mlp.fc1.weight', 'mlp.fc1.bias', 'mlp.fc2.weight', 'mlp.fc2.bias')


@dataclass
class Arch(StemArch):
    """Architecture of a SwinV2 backbone read off a state dict's tensors."""

    def config(self) -> Dict[str, Any]:
        """The ``arch`` argument of :class:`SwinTransformerV2`."""
        return dict(embed_dims=self.embed_dims, depths=list(self.depths), num_heads=list(self.num_heads))

    def describe(self) -> str:
        """One line, with the named arch (tiny/small/base/large) when it is one."""
        name = arch_name(self.embed_dims, self.depths, self.num_heads)
        extras = f', patch_size={self.patch_size}, mlp_ratio={self.mlp_ratio:g}'
        extras += '' if self.qkv_bias else ', qkv_bias=False'
        return (f'embed_dims={self.embed_dims}, depths={self.depths}, num_heads={self.num_heads}{extras}'
                + (f' ({name})' if name else ''))


@dataclass
class Conversion:
    """A state dict converted to the backbone layout, and what happened to every source tensor.

    Attributes:
        state_dict: backbone keys (official scheme, final norm as ``norm{last}``).
        layout: the source layout.
        arch: the architecture found.
        num_source: tensors in the source state dict.
        dropped: reason -> keys dropped for it (official names, or source names outside the backbone).
        trained_window: effective training window per stage, when the coordinate tables are stored.
        coords_pretrained_window: the window per stage the stored coordinate tables were normalised by.
    """

    state_dict: Dict[str, torch.Tensor]
    layout: str
    arch: Arch
    num_source: int
    dropped: Dict[str, List[str]] = field(default_factory=dict)
    trained_window: Optional[List[int]] = None
    coords_pretrained_window: Optional[List[int]] = None

    @property
    def num_used(self) -> int:
        """Source tensors that went into ``state_dict`` (HF's query/key/value count as three)."""
        return self.num_source - sum(len(keys) for keys in self.dropped.values())

    def coverage(self) -> str:
        """One line: source tensors used / dropped and why."""
        return coverage_line(self.num_source, self.dropped, f'{len(self.state_dict)} backbone tensors')


def convert_state_dict(state_dict: Dict[str, torch.Tensor], layout: str = 'auto') -> Conversion:
    """Convert a SwinV2 state dict of any known layout to the backbone layout.

    Args:
        state_dict: as read by :func:`read_checkpoint`.
        layout: ``'auto'`` (detect) or a key of ``LAYOUTS``.

    Raises:
        NotSwinV2Checkpoint: no layout matches (``SwinV1Checkpoint`` for Swin V1 weights: convert those
            with :func:`convert_checkpoint` or ``v1.convert_v1_state_dict`` for mmdet/mmseg).
        CheckpointError: the given layout does not match, or tensors with no place in
            SwinTransformerV2, or missing ones.
        ValueError: an unknown layout name.
    """
    source, dropped = split_backbone(state_dict)
    layout = resolve_layout(source, layout, LAYOUTS, detect_layout, 'SwinV2')
    official = LAYOUTS[layout].to_official(source)
    arch = infer_arch(official)
    out: Dict[str, torch.Tensor] = {}
    for key, value in official.items():
        reason = drop_reason(key)
        if reason is not None:
            dropped.setdefault(reason, []).append(key)
            continue
        out[f'norm{arch.num_stages - 1}.' + key[len('norm.'):] if key.startswith('norm.') else key] = value
    _check_keys(out, arch, layout)
    return Conversion(out, layout, arch, len(state_dict), dropped, trained_windows(official, arch.num_stages),
                      pretrained_window_from_coords(official, arch.num_stages))


def infer_arch(official: Dict[str, torch.Tensor]) -> Arch:
    """Read the architecture off a state dict in the official key scheme.

    Raises:
        CheckpointError: the patch embedding or the first block of a stage is missing.
    """
    stem = read_stem(official, 'SwinV2')
    heads = []
    for i in range(len(stem['depths'])):
        scale = official.get(f'layers.{i}.blocks.0.attn.logit_scale')
        if scale is None:
            raise CheckpointError(f'layers.{i}.blocks.0.attn.logit_scale is missing: the checkpoint is incomplete or '
                                  'not SwinV2 (V1 has no logit_scale)')
        heads.append(scale.shape[0])
    return Arch(**stem, num_heads=heads, qkv_bias='layers.0.blocks.0.attn.q_bias' in official)


def backbone_keys(arch: Arch) -> Tuple[Set[str], Set[str]]:
    """(required, optional) keys of a :class:`SwinTransformerV2` of ``arch``; optional: the output norms."""
    required = {f'patch_embed.{m}.{p}' for m in ('proj', 'norm') for p in ('weight', 'bias')}
    for i, depth in enumerate(arch.depths):
        for j in range(depth):
            names = _BLOCK_KEYS + (('attn.q_bias', 'attn.v_bias') if arch.qkv_bias else ())
            required.update(f'layers.{i}.blocks.{j}.{name}' for name in names)
        if i < arch.num_stages - 1:
            required.update(f'layers.{i}.downsample.{name}'
                            for name in ('reduction.weight', 'norm.weight', 'norm.bias'))
    optional = {f'norm{i}.{p}' for i in range(arch.num_stages) for p in ('weight', 'bias')}
    return required, optional


def _check_keys(state_dict: Dict[str, torch.Tensor], arch: Arch, layout: str) -> None:
    required, optional = backbone_keys(arch)
    unknown = sorted(set(state_dict) - required - optional)
    if unknown:
        raise CheckpointError(
            f'{len(unknown)} tensor(s) of this {layout}-layout checkpoint have no place in SwinTransformerV2 '
            f'({short(unknown)}): it is a SwinV2 variant this backbone does not implement (absolute position '
            'embedding, extra norms, another attention), or the wrong --src-format was given')
    missing = sorted(required - set(state_dict))
    if missing:
        raise CheckpointError(
            f'the {layout}-layout checkpoint lacks {len(missing)} tensor(s) that its architecture ({arch.describe()}) '
            f'needs ({short(missing)}): it is incomplete or truncated; download or export it again')


def to_official_state_dict(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Backbone layout -> official layout: ``norm{last}`` -> ``norm``; everything else as it is.

    The other output norms ``norm0..norm{last-1}`` stay (the official code loads with
    ``strict=False`` and ignores them), so that converting back gives the same state dict.
    """
    num_stages = 1 + max((int(m.group(1)) for m in map(_STAGE.match, state_dict) if m), default=-1)
    last = f'norm{num_stages - 1}.'
    return {'norm.' + k[len(last):] if k.startswith(last) else k: v for k, v in state_dict.items()}


@dataclass
class ConvertResult:
    """What :func:`convert_checkpoint` did: the conversion, the meta written and notes for the user."""

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
        evidence = per_stage(_as_list(src_meta[META_PRETRAINED_WINDOW]), num_stages, 'pretrained window')
        origin = 'from config.json' if os.path.isdir(src) else 'from the checkpoint meta'
    else:
        evidence, origin = None, ''
    notes = []
    if evidence is not None and by_name is not None and evidence != by_name:
        notes.append(f'the file name suggests pretrained_window_size={by_name} but the checkpoint says {evidence} '
                     f'({origin}); using {evidence}. Pass --pretrained-window-size to choose.')
    if override is not None:
        return per_stage(list(override), num_stages, '--pretrained-window-size'), 'from --pretrained-window-size', notes
    if evidence is not None:
        return evidence, origin, notes
    if by_name is not None:
        return by_name, 'from the released-checkpoint table, by file name', notes
    return None, ('no coordinate table, config or known file name tells it: pass --pretrained-window-size with the '
                  'window(s) the checkpoint was trained at, or the backbone cannot warn about a wrong setting'), notes


def _as_list(value: Any) -> List[int]:
    return [int(value)] if isinstance(value, int) else [int(v) for v in value]
