"""Convert SwinV2 state dicts of every known layout to the backbone layout, accounting for every tensor.

(Swin V1 state dicts are converted by the ``v1`` subpackage; files of both by ``convert_file.py``.)

:func:`convert_state_dict` runs the pipeline (``conversion.py`` has the steps both versions share):

1. a whole model (keys ``backbone.*``): keep the backbone, count everything else as dropped;
2. detect the layout and rename/merge to the official key scheme (``layouts/``);
3. drop what is no backbone weight, counted per reason: window buffers, classification head,
   masked-image-modeling mask token and decoder;
4. check the result against the key scheme of the architecture read off the tensors: a key with no
   place in :class:`SwinTransformerV2` or a missing one raises, so nothing is dropped silently;
5. final ``norm`` -> ``norm{last}`` (the last stage's output norm).

The backbone layout is the official key scheme plus output norms ``norm{i}``;
:func:`to_official_state_dict` goes back.
"""
import re
from dataclasses import dataclass
from typing import Any, Dict, Optional, Set, Tuple

import torch

from ..arch import arch_name, has_extra_norm
from .conversion import Conversion, check_keys, keep_backbone, split_backbone
from .detect import detect_layout, resolve_layout
from .errors import CheckpointError
from .layouts import LAYOUTS
from .stem import StemArch, read_stem, scheme_keys
from .windows import pretrained_window_from_coords, trained_windows

__all__ = ['Arch', 'convert_state_dict', 'infer_arch', 'to_backbone_state_dict', 'to_official_state_dict']

_STAGE = re.compile(r'^layers\.(\d+)\.')
_BLOCK_KEYS = ('norm1.weight', 'norm1.bias', 'attn.qkv.weight', 'attn.logit_scale', 'attn.cpb_mlp.0.weight',
               'attn.cpb_mlp.0.bias', 'attn.cpb_mlp.2.weight', 'attn.proj.weight', 'attn.proj.bias', 'norm2.weight',
               'norm2.bias', 'mlp.fc1.weight', 'mlp.fc1.bias', 'mlp.fc2.weight', 'mlp.fc2.bias')
_UNSUPPORTED = ('a SwinV2 variant this backbone does not implement (absolute position embedding, extra norms at '
                'other blocks than every n-th of each stage, another attention)')
_EXTRA_NORM = re.compile(r'^layers\.\d+\.blocks\.(\d+)\.norm3\.weight$')


@dataclass
class Arch(StemArch):
    """Architecture of a SwinV2 backbone read off a state dict's tensors.

    ``extra_norm_every_n_blocks``: the period of the extra block norms ``layers.{i}.blocks.{j}.norm3``
    of SwinV2-H / G (0: none), read off the first block that has one.
    """

    extra_norm_every_n_blocks: int = 0

    def config(self) -> Dict[str, Any]:
        """The ``arch`` argument of :class:`SwinTransformerV2` (with ``extra_norm_every_n_blocks`` when > 0)."""
        config = dict(embed_dims=self.embed_dims, depths=list(self.depths), num_heads=list(self.num_heads))
        if self.extra_norm_every_n_blocks:
            config['extra_norm_every_n_blocks'] = self.extra_norm_every_n_blocks
        return config

    def describe(self) -> str:
        """One line, with the named arch (tiny/small/base/large/huge/giant) when it is one."""
        name = arch_name(self.embed_dims, self.depths, self.num_heads, self.extra_norm_every_n_blocks)
        extras = f', patch_size={self.patch_size}, mlp_ratio={self.mlp_ratio:g}'
        extras += '' if self.qkv_bias else ', qkv_bias=False'
        extras += f', extra_norm_every_n_blocks={self.extra_norm_every_n_blocks}' \
            if self.extra_norm_every_n_blocks else ''
        return (f'embed_dims={self.embed_dims}, depths={self.depths}, num_heads={self.num_heads}{extras}'
                + (f' ({name})' if name else ''))

    def official_keys(self) -> Tuple[Set[str], Set[str]]:
        """(required, optional) official-scheme keys; optional: the final ``norm`` and the output norms ``norm{i}``."""
        block_keys = _BLOCK_KEYS + (('attn.q_bias', 'attn.v_bias') if self.qkv_bias else ())
        norms = ['norm'] + [f'norm{i}' for i in range(self.num_stages)]
        extra_norms = {f'layers.{i}.blocks.{j}.norm3.{p}' for i, depth in enumerate(self.depths) for j in range(depth)
                       if has_extra_norm(j, self.extra_norm_every_n_blocks) for p in ('weight', 'bias')}
        return (scheme_keys(self.depths, block_keys) | extra_norms,
                {f'{n}.{p}' for n in norms for p in ('weight', 'bias')})


def convert_state_dict(state_dict: Dict[str, torch.Tensor], layout: str = 'auto',
                       num_stages: Optional[int] = None) -> Conversion:
    """Convert a SwinV2 state dict of any known layout to the backbone layout.

    Args:
        state_dict: as read by :func:`read_checkpoint`.
        layout: ``'auto'`` (detect) or a key of ``LAYOUTS``.
        num_stages: the stages of the model it is for; None accepts any number.

    Raises:
        NotSwinV2Checkpoint: no layout matches (``SwinV1Checkpoint`` for Swin V1 weights: convert those
            with :func:`convert_checkpoint` or ``v1.convert_v1_state_dict`` for mmdet/mmseg).
        CheckpointError: the given layout does not match, tensors with no place in
            SwinTransformerV2, missing ones, or another number of stages than ``num_stages``.
        ValueError: an unknown layout name.
    """
    source, dropped = split_backbone(state_dict)
    layout = resolve_layout(source, layout, LAYOUTS, detect_layout, 'SwinV2')
    official = LAYOUTS[layout].to_official(source)
    kept = keep_backbone(official, dropped)
    arch = infer_arch(official)
    check_keys(kept, arch, layout, 'SwinTransformerV2', _UNSUPPORTED)
    if num_stages is not None and arch.num_stages != num_stages:
        raise CheckpointError(f'the checkpoint has {arch.num_stages} stages ({arch.describe()}), '
                              f'the model {num_stages}; configure the backbone arch to match the checkpoint')
    last = f'norm{arch.num_stages - 1}.'
    out = {last + k[len('norm.'):] if k.startswith('norm.') else k: v for k, v in kept.items()}
    return Conversion(out, layout, arch, 'backbone', len(state_dict), dropped,
                      trained_window=trained_windows(official, arch.num_stages),
                      coords_pretrained_window=pretrained_window_from_coords(official, arch.num_stages))


def to_backbone_state_dict(state_dict: Dict[str, torch.Tensor], layout: str = 'auto',
                           num_stages: int = 4) -> Tuple[Dict[str, torch.Tensor], str]:
    """Convert a state dict of any known layout to this package's backbone keys.

    Window-dependent buffers, the classification head and pre-training-only tensors are dropped;
    the final ``norm`` becomes the last stage's output norm ``norm{num_stages-1}``.

    Returns:
        (backbone state dict, layout name).

    Raises:
        CheckpointError: the checkpoint has another number of stages, or see :func:`convert_state_dict`.
    """
    conversion = convert_state_dict(state_dict, layout, num_stages)
    return conversion.state_dict, conversion.layout


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
    extra_norm_blocks = [int(m.group(1)) for m in map(_EXTRA_NORM.match, official) if m]
    return Arch(**stem, num_heads=heads, qkv_bias='layers.0.blocks.0.attn.q_bias' in official,
                extra_norm_every_n_blocks=1 + min(extra_norm_blocks, default=-1))


def to_official_state_dict(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Backbone layout -> official layout: ``norm{last}`` -> ``norm``; everything else as it is.

    The other output norms ``norm0..norm{last-1}`` stay (the official code loads with
    ``strict=False`` and ignores them), so that converting back gives the same state dict.
    :func:`~swin_dense.checkpoint.layouts.from_official_state_dict` takes the result on to any other layout.
    """
    num_stages = 1 + max((int(m.group(1)) for m in map(_STAGE.match, state_dict) if m), default=-1)
    last = f'norm{num_stages - 1}.'
    return {'norm.' + k[len(last):] if k.startswith(last) else k: v for k, v in state_dict.items()}
