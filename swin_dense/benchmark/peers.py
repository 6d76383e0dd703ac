"""The implementations under test: swin_dense (eager, compiled, without the fused Linear layers), timm, mmpretrain.

Each is built with the same architecture and loaded with the same weights (:mod:`.weights`), and
knows how to switch activation checkpointing (and, for swin_dense, chunking). Stochastic depth and
dropout are 0 everywhere.

* timm has no per-stage output norms; its wrapper here applies norm0..norm2 (swin_dense's weights)
  to the stage outputs and timm's own final ``norm`` as norm3, so all three do the same work.
  timm is built per input size with ``img_size=(H, W)`` (that sets its per-stage window and shift);
  static masks (``strict_img_size=True``) where every stage map divides into whole windows, else
  ``strict_img_size=False`` (mask rebuilt each forward). timm rolls before padding (timm #2438), so
  its masks are wrong at sizes whose shifted stages are not window multiples: there it is timed,
  not compared (:func:`.agreement.timm_comparable`).
* mmpretrain runs with ``pad_small_map=False`` (its default, the official numerics).

timm and mmpretrain are optional (``pip install swin_dense[bench]``): each is imported when its
model is built, so a missing one is an error row of its own.
"""
import gc
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ..layers.swin_block import effective_window
from ..models import SwinTransformerV2
from .extras import require
from .weights import check_round_trip, peer_state_dict, timm_extra_norms

IMPLS = ('swin_dense', 'timm', 'mmpretrain', 'swin_dense_compiled', 'swin_dense_unfused')
DEFAULT_IMPLS = IMPLS[:3]  # swin_dense_compiled: inductor compiles for minutes on a small CPU
PATCH = 4


def stage_maps(h: int, w: int, num_stages: int) -> List[Tuple[int, int]]:
    """Feature-map size of every stage (ceil division, as the padding patch embed / merging give)."""
    maps = [(math.ceil(h / PATCH), math.ceil(w / PATCH))]
    for _ in range(num_stages - 1):
        maps.append((math.ceil(maps[-1][0] / 2), math.ceil(maps[-1][1] / 2)))
    return maps


def timm_static_ok(h: int, w: int, num_stages: int, window: int) -> bool:
    """timm's static (init-time) masks work: exact stage maps, shifted stages in whole windows."""
    reduction = PATCH * 2 ** (num_stages - 1)
    if h % reduction or w % reduction:
        return False
    for mh, mw in stage_maps(h, w, num_stages):
        win, shift = effective_window(mh, mw, window)
        if shift and (mh % win or mw % win):
            return False
    return True


class TimmBackbone(nn.Module):
    """timm's SwinV2 stages plus per-stage output norms, NCHW outputs like the other two backbones."""

    def __init__(self, model: nn.Module, extra_norms: Dict[str, torch.Tensor], num_stages: int) -> None:
        super().__init__()
        self.model = model
        self.norms = nn.ModuleList()
        for i in range(num_stages - 1):
            norm = nn.LayerNorm(extra_norms[f'norm{i}.weight'].numel())
            norm.load_state_dict({'weight': extra_norms[f'norm{i}.weight'], 'bias': extra_norms[f'norm{i}.bias']})
            self.norms.append(norm)
        self.norms.append(model.norm)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        x = self.model.patch_embed(x)
        outs = []
        for stage, norm in zip(self.model.layers, self.norms):
            x = stage(x)
            outs.append(norm(x).permute(0, 3, 1, 2).contiguous())
        return tuple(outs)


def set_chunks(backbone: SwinTransformerV2, attn: Sequence[int], mlp: Sequence[int]) -> None:
    """Switch the chunks of every block of a built backbone: ``attn[i]`` / ``mlp[i]`` windows in stage i."""
    for stage, attn_chunk, mlp_chunk in zip(backbone.layers, attn, mlp):
        for block in stage.blocks:
            block.attn.chunk_size = attn_chunk
            block.mlp_chunk_size = mlp_chunk


def set_with_cp(backbone: SwinTransformerV2, flag: bool) -> None:
    """Switch activation checkpointing of every stage of a built backbone."""
    for stage in backbone.layers:
        stage.with_cp = flag


class Impl:
    """One implementation under test: builds its model per size and toggles checkpointing/chunking."""

    name = ''
    per_size = False  # rebuilt for every input size

    def __init__(self, arch: Dict, window: int, state: Dict[str, torch.Tensor], device: torch.device) -> None:
        self.arch, self.window, self.state, self.device = arch, window, state, device
        self.num_stages = len(arch['depths'])
        self.model: Optional[nn.Module] = None
        self.note = ''

    def build(self, size: Tuple[int, int]) -> nn.Module:
        if self.model is None or self.per_size:
            self.model = None
            gc.collect()
            self.model = self._build(size).to(self.device)
        return self.model

    def _build(self, size: Tuple[int, int]) -> nn.Module:
        raise NotImplementedError

    def set_with_cp(self, flag: bool) -> None:
        raise NotImplementedError

    def set_chunks(self, attn: Sequence[int], mlp: Sequence[int]) -> None:
        """Sequential attention / MLP chunks per stage (swin_dense only; the peers have none)."""

    def param_for_grad_check(self) -> torch.Tensor:
        raise NotImplementedError

    def static_buffer_bytes(self) -> int:
        """Bytes of masks the model built ahead of the first step (counted like caches filled by it)."""
        return 0


class SwinDenseImpl(Impl):
    name = 'swin_dense'

    def _build(self, size):
        model = SwinTransformerV2(arch=self.arch, window_size=self.window, drop_path_rate=0.0,
                                  out_indices=tuple(range(self.num_stages)))
        model.load_state_dict(self.state, strict=True)
        return model

    def set_with_cp(self, flag):
        set_with_cp(self._backbone(), flag)

    def set_chunks(self, attn, mlp):
        set_chunks(self._backbone(), attn, mlp)

    def param_for_grad_check(self):
        return self._backbone().patch_embed.proj.weight

    def _backbone(self) -> SwinTransformerV2:
        return self.model


class SwinDenseCompiledImpl(SwinDenseImpl):
    """swin_dense under ``torch.compile`` (inductor); the first step at each size includes compilation."""

    name = 'swin_dense_compiled'

    def _build(self, size):
        return torch.compile(super()._build(size))

    def set_with_cp(self, flag):
        super().set_with_cp(flag)
        torch._dynamo.reset()  # recompile with the new setting

    def _backbone(self) -> SwinTransformerV2:
        return self.model._orig_mod


class SwinDenseUnfusedImpl(SwinDenseImpl):
    """swin_dense with plain ``F.linear`` in inference (``set_fused_linear(False)``): what the fused
    Linear layers gain."""

    name = 'swin_dense_unfused'

    def _build(self, size):
        model = super()._build(size)
        model.set_fused_linear(False)
        return model


class TimmImpl(Impl):
    name = 'timm'
    per_size = True

    def _build(self, size):
        timm_swinv2 = require('timm.models.swin_transformer_v2', 'the timm peer')
        static = timm_static_ok(*size, self.num_stages, self.window)
        self.note = 'static masks' if static else 'strict_img_size=False (mask rebuilt every forward)'
        model = timm_swinv2.SwinTransformerV2(
            img_size=size, patch_size=PATCH, num_classes=0, embed_dim=self.arch['embed_dims'],
            depths=tuple(self.arch['depths']), num_heads=tuple(self.arch['num_heads']), window_size=self.window,
            strict_img_size=static, drop_path_rate=0.0, pretrained_window_sizes=(0,) * self.num_stages)
        model.load_state_dict(peer_state_dict(self.state, 'timm'), strict=True)
        extra = timm_extra_norms(self.state)
        check_round_trip(model.state_dict(), 'timm', {k: v for k, v in self.state.items() if k not in extra},
                         self.num_stages)
        return TimmBackbone(model, extra, self.num_stages)

    def set_with_cp(self, flag):
        self.model.model.set_grad_checkpointing(flag)

    def static_buffer_bytes(self):
        return sum(b.numel() * b.element_size() for n, b in self.model.named_buffers() if n.endswith('attn_mask'))

    def param_for_grad_check(self):
        return self.model.model.patch_embed.proj.weight


class MMPretrainImpl(Impl):
    name = 'mmpretrain'

    def _build(self, size):
        backbones = require('mmpretrain.models.backbones', 'the mmpretrain peer')
        arch = dict(self.arch, extra_norm_every_n_blocks=self.arch.get('extra_norm_every_n_blocks', 0))
        model = backbones.SwinTransformerV2(arch=arch, window_size=self.window, drop_path_rate=0.0,
                                            pad_small_map=False, out_indices=tuple(range(self.num_stages)),
                                            pretrained_window_sizes=[0] * self.num_stages)
        result = model.load_state_dict(peer_state_dict(self.state, 'mmpretrain'), strict=False)
        missing = [k for k in result.missing_keys
                   if not k.endswith(('relative_coords_table', 'relative_position_index'))]
        if missing or result.unexpected_keys:
            raise RuntimeError(f'mmpretrain layout mismatch: missing {missing[:5]}, '
                               f'unexpected {result.unexpected_keys[:5]}')
        check_round_trip(model.state_dict(), 'mmpretrain', self.state, self.num_stages)
        return model

    def set_with_cp(self, flag):
        for stage in self.model.stages:
            for block in stage.blocks:
                block.with_cp = flag

    def param_for_grad_check(self):
        return self.model.patch_embed.projection.weight


IMPL_CLASSES = {c.name: c for c in (SwinDenseImpl, SwinDenseCompiledImpl, SwinDenseUnfusedImpl, TimmImpl,
                                    MMPretrainImpl)}


def make_impls(names, arch: Dict, window: int, state: Dict[str, torch.Tensor],
               device: torch.device) -> Dict[str, Impl]:
    """The implementations ``names`` (from :data:`IMPLS`), in that order; none is built yet."""
    return {name: IMPL_CLASSES[name](arch, window, state, device) for name in names}
