"""Swin Transformer V2 backbone for dense prediction (mmdet 3.x / mmsegmentation 1.x).

Image (B, 3, H, W)
  -> patch_embed: Conv 4x4 stride 4 + LayerNorm                      (B, H/4, W/4, C)
  -> layers.0 .. layers.3: res-post-norm blocks with scaled cosine window attention and
     log-spaced continuous position bias, alternating shifted windows; V2 patch merging at the
     end of stages 0-2 (C, 2C, 4C, 8C channels)
  -> norm{i} on every stage in ``out_indices``                        (B, 2^i C, H/2^(i+2), W/2^(i+2))

Any H x W works (sizes are ceil-divided); state-dict keys are the official microsoft/Swin-Transformer
ones, plus ``norm0``..``norm3`` for the outputs. The official code has no extra norms (SwinV2-H/G); theirs
are ``layers.{i}.blocks.{j}.norm3``, beside the official ``norm1``/``norm2`` and as mmpretrain names them.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

from ...arch import has_extra_norm, per_stage, resolve_arch
from ...layers.linear import FusedLinear
from ...layers.swin_block import SwinStageV2
from ...layers.window_attention import ATTN_IMPLS
from .layer_depth import swin_layer_depth
from .pretrained import load_pretrained, pretrained_init_cfg, registry_pretrained_window


class PatchEmbed(nn.Module):
    """Non-overlapping patch embedding: zero-pad to patch multiples, Conv2d(k=s=patch), LayerNorm."""

    def __init__(self, in_channels: int, embed_dims: int, patch_size: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, embed_dims, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, ceil(H/p), ceil(W/p), C)."""
        h, w = x.shape[-2:]
        if h < self.patch_size or w < self.patch_size:
            raise ValueError(f'input of {h}x{w} pixels is smaller than one {self.patch_size}x{self.patch_size} '
                             'patch; resize or pad images to at least one patch')
        p = self.patch_size
        if h % p or w % p:
            x = F.pad(x, (0, (-w) % p, 0, (-h) % p))
        # A channels-last input makes the convolution write (B, H', W', C) memory: the permute is then
        # free and the LayerNorm reads contiguous rows (same values as from NCHW).
        x = self.proj(x.contiguous(memory_format=torch.channels_last))
        return self.norm(x.permute(0, 2, 3, 1))


@MODELS.register_module()
class SwinTransformerV2(BaseModule):
    """Swin Transformer V2 ("Swin Transformer V2: Scaling Up Capacity and Resolution").

    Registered in mmengine's root ``MODELS`` registry, so mmdet and mmseg configs find it by
    ``type='SwinTransformerV2'`` after ``custom_imports=dict(imports=['swin_dense'])``.

    Args:
        arch: 'tiny', 'small', 'base', 'large', 'huge', 'giant' (``arch.ARCH_ZOO``) or
            dict(embed_dims, depths, num_heads[, extra_norm_every_n_blocks]) as mmpretrain's: with
            ``extra_norm_every_n_blocks=n`` > 0 (huge and giant: 6), block ``j`` of every stage with
            ``(j + 1) % n == 0`` ends with an extra LayerNorm ``layers.{i}.blocks.{j}.norm3``.
        window_size: window per stage (int or one per stage).
        pretrained_window_size: per stage, as ``window_size``: the window each stage's position-bias
            MLPs were trained with (int or one per stage, 0 = none). For the public 192-px
            ImageNet-22K checkpoints use [12, 12, 12, 6].
        in_channels: input channels.
        patch_size: patch embedding size.
        mlp_ratio: MLP hidden size over channels.
        qkv_bias: learn q and v biases.
        drop_rate: dropout after MLPs and attention projections.
        attn_drop_rate: dropout on attention weights.
        drop_path_rate: stochastic depth, linearly increasing over all blocks.
        out_indices: stages whose (normalised) outputs are returned.
        frozen_stages: -1 freezes nothing; k >= 0 freezes the patch embedding and stages 0..k-1
            (with their patch merging and output norms), as mmdet's Swin.
        norm_eval: keep normalisation layers in eval mode while training (as mmdet backbones;
            LayerNorm has no running statistics, so this only matters for added BatchNorms).
        with_cp: non-reentrant activation checkpointing of each block while training (less memory;
            each block runs again in the backward pass).
        attn_impl: 'sdpa' (fused, default) or 'eager' (the official op order).
        attn_chunk_size: sequential attention for very large inputs (SwinV2 paper, section 3.4):
            windows per attention call (int or one per stage), each call checkpointed while
            gradients are recorded, so no whole-map q/k/v or attention weights are held; 0
            (default) for all at once. Training recomputes each chunk's attention once in the
            backward pass; combine with ``with_cp`` for the smallest peak.
        mlp_chunk_size: the same for the MLP (int or one per stage): ``mlp_chunk_size * window**2``
            tokens (that many windows' worth) per call of the MLP and its post-norm, so no
            whole-map 4C-wide hidden activations are held; 0 (default) for all at once. The memory
            configs set it with ``attn_chunk_size``.
        mask_padding: stop real tokens from attending to the zero padding of border windows. Off by
            default, as in the official code, timm and HF (it changes results at sizes that are not
            window multiples).
        pretrained: a checkpoint, as mmseg's ``model.pretrained`` (which mmseg's EncoderDecoder pushes
            into the backbone): the same as ``init_cfg=dict(type='Pretrained', checkpoint=pretrained)``.
        init_cfg: ``dict(type='Pretrained', checkpoint=PATH)`` loads weights (official or timm
            layout, or any converted with tools/convert_checkpoint.py).
    """

    def __init__(self, arch: Union[str, Dict] = 'tiny', window_size: Union[int, Sequence[int]] = 8,
                 pretrained_window_size: Union[int, Sequence[int]] = 0, in_channels: int = 3, patch_size: int = 4,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.2, out_indices: Sequence[int] = (0, 1, 2, 3), frozen_stages: int = -1,
                 norm_eval: bool = False, with_cp: bool = False, attn_impl: str = 'sdpa',
                 attn_chunk_size: Union[int, Sequence[int]] = 0, mlp_chunk_size: Union[int, Sequence[int]] = 0,
                 mask_padding: bool = False, pretrained: Optional[str] = None,
                 init_cfg: Optional[Dict] = None) -> None:
        init_cfg = pretrained_init_cfg(pretrained, init_cfg)
        super().__init__(init_cfg=init_cfg)
        embed_dims, depths, num_heads, extra_norm_every_n_blocks = resolve_arch(arch)
        num_stages = len(depths)
        windows = per_stage(window_size, num_stages, 'window_size')
        pretrained_windows = per_stage(pretrained_window_size, num_stages, 'pretrained_window_size')
        pretrained_windows = registry_pretrained_window(init_cfg, pretrained_windows)
        attn_chunks = per_stage(attn_chunk_size, num_stages, 'attn_chunk_size')
        mlp_chunks = per_stage(mlp_chunk_size, num_stages, 'mlp_chunk_size')
        self._check_args(embed_dims, num_heads, windows, pretrained_windows, out_indices, frozen_stages, attn_impl,
                         dict(attn_chunk_size=attn_chunks, mlp_chunk_size=mlp_chunks))

        self.embed_dims = embed_dims
        self.depths = depths
        self.num_heads = num_heads
        self.extra_norm_every_n_blocks = extra_norm_every_n_blocks
        self.window_size = windows
        self.pretrained_window_size = pretrained_windows
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.num_features = [embed_dims * 2 ** i for i in range(num_stages)]

        self.patch_embed = PatchEmbed(in_channels, embed_dims, patch_size)
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = torch.linspace(0, drop_path_rate, sum(depths), device='cpu').tolist()
        self.layers = nn.ModuleList()
        for i in range(num_stages):
            start = sum(depths[:i])
            self.layers.append(SwinStageV2(
                self.num_features[i], depths[i], num_heads[i], windows[i], pretrained_windows[i],
                drop_path_rates=dpr[start:start + depths[i]], downsample=i < num_stages - 1,
                mask_padding=mask_padding, with_cp=with_cp,
                extra_norms=[has_extra_norm(j, extra_norm_every_n_blocks) for j in range(depths[i])],
                mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                drop_rate=drop_rate, attn_drop_rate=attn_drop_rate, attn_impl=attn_impl,
                attn_chunk_size=attn_chunks[i], mlp_chunk_size=mlp_chunks[i]))
        for i in self.out_indices:
            self.add_module(f'norm{i}', nn.LayerNorm(self.num_features[i]))
        self._freeze_stages()

    @staticmethod
    def _check_args(embed_dims: int, num_heads: List[int], windows: List[int], pretrained_windows: List[int],
                    out_indices: Sequence[int], frozen_stages: int, attn_impl: str,
                    chunk_sizes: Dict[str, List[int]]) -> None:
        num_stages = len(num_heads)
        for i, heads in enumerate(num_heads):
            if heads <= 0 or (embed_dims * 2 ** i) % heads:
                raise ValueError(f'stage {i} has {embed_dims * 2 ** i} channels (embed_dims={embed_dims} x 2^{i}), '
                                 f'not divisible by num_heads={heads}; choose embed_dims/num_heads that divide')
        if any(w <= 0 for w in windows):
            raise ValueError(f'window_size must be positive in every stage, got {windows}')
        if any(p == 1 or p < 0 for p in pretrained_windows):
            raise ValueError(f'pretrained_window_size {pretrained_windows}: use 0 for none or the window the '
                             'checkpoint was trained with (>= 2); 1 would divide coordinates by 0')
        bad = [i for i in out_indices if not 0 <= i < num_stages]
        if bad or not out_indices:
            raise ValueError(f'out_indices {tuple(out_indices)} must be a non-empty subset of 0..{num_stages - 1}')
        if not -1 <= frozen_stages <= num_stages:
            raise ValueError(f'frozen_stages={frozen_stages} is out of range: use -1 (none) to {num_stages} (all)')
        if attn_impl not in ATTN_IMPLS:
            raise ValueError(f'attn_impl must be one of {ATTN_IMPLS}, got {attn_impl!r}')
        for name, chunks in chunk_sizes.items():
            if any(c < 0 for c in chunks):
                raise ValueError(f'{name} must be 0 (off) or a positive number of windows in every stage, got {chunks}')

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """(B, C_in, H, W) -> tuple of (B, C_i, ceil(H / 2^(i+2)), ceil(W / 2^(i+2))) for i in out_indices."""
        x = self.pos_drop(self.patch_embed(x))
        outs = []
        for i, stage in enumerate(self.layers):
            out, down = stage(x)
            if i in self.out_indices:
                outs.append(getattr(self, f'norm{i}')(out).permute(0, 3, 1, 2).contiguous())
            if down is None:
                break
            x = down
        return tuple(outs)

    def get_layer_depth(self, param_name: str, prefix: str = '') -> Tuple[int, int]:
        """Layer id of a parameter for layer-wise lr decay (mmpretrain's convention for its backbones).

        Args:
            param_name: parameter name in the model, e.g. ``backbone.layers.2.blocks.5.mlp.fc1.weight``.
            prefix: where this backbone sits in the model, e.g. ``'backbone.'``.

        Returns:
            ``(layer_depth, num_layers)`` with ``num_layers = sum(depths) + 2``: ``patch_embed`` is 0,
            ``layers.{i}.blocks.{j}`` is ``sum(depths[:i]) + j + 1``, ``layers.{i}.downsample`` is
            ``sum(depths[:i + 1])`` (with the stage's last block), and the output norms and every
            name outside ``prefix`` are the top, ``num_layers - 1`` (see :mod:`.layer_depth`).
        """
        return swin_layer_depth(param_name, self.depths, prefix, stages='layers')

    def set_fused_linear(self, enable: bool = True) -> None:
        """Let every :class:`FusedLinear` layer take the oneDNN kernel in fp32 CPU inference
        (``True``, the default) or run plain ``F.linear`` always (``False``)."""
        for module in self.modules():
            if isinstance(module, FusedLinear):
                module.fused = enable

    def _freeze_stages(self) -> None:
        frozen: List[nn.Module] = []
        if self.frozen_stages >= 0:
            frozen.append(self.patch_embed)
        for i in range(self.frozen_stages):
            frozen.append(self.layers[i])
            if i in self.out_indices:
                frozen.append(getattr(self, f'norm{i}'))
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'SwinTransformerV2':
        """Switch mode, keeping frozen stages (and, with ``norm_eval``, normalisation layers) in eval."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, (_BatchNorm, nn.LayerNorm, nn.GroupNorm)):
                    m.eval()
        return self

    def init_weights(self) -> None:
        """Load ``init_cfg``'s pretrained checkpoint, or initialise from scratch as the official code.

        From scratch: truncated normal (std 0.02) for Linear layers, zero biases, LayerNorm (1, 0),
        then the res-post-norms (``norm1``/``norm2`` of every block) zeroed; the extra norms ``norm3``
        keep (1, 0), as mmpretrain's.
        """
        if self.init_cfg is not None and self.init_cfg.get('type') == 'Pretrained':
            load_pretrained(self, self.init_cfg['checkpoint'], allow_partial=self.init_cfg.get('allow_partial', False),
                            setting=self.init_cfg.get('source', 'init_cfg'))
        else:
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.trunc_normal_(m.weight, std=0.02)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
                elif isinstance(m, nn.LayerNorm):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
            for stage in self.layers:
                for block in stage.blocks:
                    for norm in (block.norm1, block.norm2):
                        nn.init.zeros_(norm.weight)
                        nn.init.zeros_(norm.bias)
        self._is_init = True
