"""Layer-wise learning-rate decay for Swin detectors and segmentors (SwinV2 and Swin V1).

``SwinV2LayerDecayOptimizerConstructor`` is registered in mmengine's root
``OPTIM_WRAPPER_CONSTRUCTORS`` registry, so configs in the mmdet and mmseg scopes find it::

    optim_wrapper = dict(
        type='OptimWrapper',
        constructor='SwinV2LayerDecayOptimizerConstructor',
        optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
        paramwise_cfg=dict(
            decay_rate=0.9,          # lr scale per layer below the top
            num_layers=None,         # None: sum(depths) + 1 of the backbone
            norm_decay_mult=0.,      # no weight decay on any normalisation layer
            custom_keys={'cpb_mlp': dict(decay_mult=0.), 'logit_scale': dict(decay_mult=0.),
                         'q_bias': dict(decay_mult=0.), 'v_bias': dict(decay_mult=0.),
                         # the Swin V1 equivalents (they match no SwinV2 parameter)
                         'relative_position_bias_table': dict(decay_mult=0.),
                         'absolute_pos_embed': dict(decay_mult=0.)}))

(It has its own name: mmseg already registers a ``LayerDecayOptimizerConstructor`` of its own for
BEiT/ConvNeXt, which the mmseg scope would find first.)

**Backbones.** Despite the name, the constructor serves both Swin generations, so a V1 config can
inherit the optimizer of its V2 parent unchanged (``configs/cascade_swin_*_coco.py``):

* this package's ``SwinTransformerV2`` (stages in ``backbone.layers``), and
* mmdet's and mmseg's Swin V1 ``SwinTransformer`` (stages in ``backbone.stages``), and subclasses.

The depths are read from the module itself (``len(stage.blocks)`` of every stage), so a backbone
built from any ``arch`` or ``depths`` works. Any other backbone is refused with an error naming the
supported ones (:data:`SWIN_STAGE_ATTRS`); mmpretrain's Swin is not among them, because its patch
merging sits at the start of a stage, which would shift the numbering below.

Layer ids (the official Swin / SimMIM numbering; ``D = sum(depths)``; ``S`` = ``layers`` for SwinV2,
``stages`` for Swin V1):

==============================================  ============================
parameter                                       layer id
==============================================  ============================
``backbone.patch_embed.*``                      0
``backbone.absolute_pos_embed`` (V1, if used)   0
``backbone.S.{i}.blocks.{j}.*``                 ``sum(depths[:i]) + j + 1``
``backbone.S.{i}.downsample.*``                 ``sum(depths[:i + 1])``
``backbone.norm{i}`` (output norms)             ``num_layers`` (top)
any other backbone parameter                    ``num_layers`` (top)
everything outside the backbone (neck, heads)   ``num_layers`` (top)
==============================================  ============================

Both generations merge patches at the end of stage ``i`` (``S.{i}.downsample``), so the same
table applies to both. ``num_layers`` defaults to ``D + 1`` (one more than the last block), and the
learning rate of a parameter is ``base_lr * lr_mult * decay_rate ** (num_layers - layer_id)``: the
patch embedding gets ``decay_rate ** (D + 1)``, the last block ``decay_rate``, and the neck and
heads the full rate. The output norms sit at the top, as the official code treats its final
``norm`` (which becomes ``norm3`` here) and as newly added layers should.

Everything mmengine's ``DefaultOptimWrapperConstructor`` does (``custom_keys`` with ``lr_mult``
and ``decay_mult``, ``norm_decay_mult``, ``bias_decay_mult``, ...) applies first; the layer scale
multiplies the resulting learning rate. Each parameter group records ``param_name``, ``layer_id``
and ``lr_scale``.
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS

#: Swin backbones the constructor knows: fully qualified class name -> the attribute holding the
#: stages (each stage has ``blocks`` and, except the last, a ``downsample`` applied after them).
SWIN_STAGE_ATTRS: Dict[str, str] = {
    'swin_dense.models.backbones.swinv2.SwinTransformerV2': 'layers',
    'mmdet.models.backbones.swin.SwinTransformer': 'stages',
    'mmseg.models.backbones.swin.SwinTransformer': 'stages',
}


@dataclass(frozen=True)
class SwinLayout:
    """Where a Swin backbone keeps its stages, and how many blocks each has.

    Attributes:
        stages: attribute of the backbone holding the stages (``'layers'`` or ``'stages'``).
        depths: blocks per stage, read from the module.
        backbone_type: the backbone's fully qualified class name (for messages).
    """

    stages: str
    depths: Tuple[int, ...]
    backbone_type: str


def _qualified_name(cls: type) -> str:
    return f'{cls.__module__}.{cls.__qualname__}'


def swin_layout(backbone: nn.Module) -> SwinLayout:
    """The stage attribute and depths of a supported Swin backbone (a subclass of one works too).

    Raises:
        ValueError: if ``backbone`` is not one of :data:`SWIN_STAGE_ATTRS` (or a subclass of one).
    """
    for cls in type(backbone).__mro__:
        attr = SWIN_STAGE_ATTRS.get(_qualified_name(cls))
        if attr is not None:
            break
    else:
        raise ValueError(
            f'layer-wise lr decay does not know the backbone {_qualified_name(type(backbone))}; '
            f'SwinV2LayerDecayOptimizerConstructor supports {sorted(SWIN_STAGE_ATTRS)} and their subclasses. '
            'Use a Swin backbone, or the default constructor (remove optim_wrapper.constructor) for other ones')
    stages = getattr(backbone, attr)
    return SwinLayout(stages=attr, depths=tuple(len(stage.blocks) for stage in stages),
                      backbone_type=_qualified_name(type(backbone)))


def swin_layer_id(name: str, depths: List[int], num_layers: int, prefix: str = 'backbone.',
                  stages: str = 'layers') -> int:
    """Layer id of parameter ``name`` (a full name in the model) for layer-wise lr decay.

    Args:
        name: parameter name, e.g. ``backbone.layers.1.blocks.0.attn.qkv.weight``.
        depths: blocks per stage of the backbone.
        num_layers: id of the top layer (neck, heads, output norms).
        prefix: where the backbone sits in the model.
        stages: the backbone's stage attribute: ``'layers'`` (SwinV2), ``'stages'`` (mmdet/mmseg Swin V1).
    """
    if not name.startswith(prefix):
        return num_layers
    rest = name[len(prefix):].split('.')
    if rest[0] in ('patch_embed', 'absolute_pos_embed'):
        return 0
    if rest[0] == stages and len(rest) > 2:
        stage = int(rest[1])
        if rest[2] == 'blocks':
            return sum(depths[:stage]) + int(rest[3]) + 1
        if rest[2] == 'downsample':
            return sum(depths[:stage + 1])
    return num_layers


#: the name this function had when only SwinV2 was supported (exported by ``swin_dense.engine``)
swinv2_layer_id = swin_layer_id


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class SwinV2LayerDecayOptimizerConstructor(DefaultOptimWrapperConstructor):
    """Layer-wise lr decay for a model whose ``backbone`` is a SwinTransformerV2 or an mmdet/mmseg
    Swin V1 ``SwinTransformer`` (see the module docs).

    ``paramwise_cfg`` keys besides mmengine's: ``decay_rate`` (default 1.0, i.e. no decay),
    ``num_layers`` (default ``sum(depths) + 1``), ``backbone_prefix`` (default ``'backbone'``).
    """

    def __init__(self, optim_wrapper_cfg: Dict, paramwise_cfg: Optional[Dict] = None) -> None:
        # The keys stay in paramwise_cfg (mmengine ignores unknown ones), so that it is never empty:
        # the parent skips add_params altogether when paramwise_cfg is empty.
        paramwise_cfg = dict(paramwise_cfg or {})
        self.decay_rate = float(paramwise_cfg.setdefault('decay_rate', 1.0))
        self.num_layers = paramwise_cfg.get('num_layers', None)
        self.backbone_prefix = paramwise_cfg.get('backbone_prefix', 'backbone')
        if not 0 < self.decay_rate <= 1:
            raise ValueError(f'decay_rate must be in (0, 1], got {self.decay_rate}')
        super().__init__(optim_wrapper_cfg, paramwise_cfg)

    def _backbone(self, model: nn.Module) -> nn.Module:
        module = model
        for part in self.backbone_prefix.split('.'):
            if not hasattr(module, part):
                raise ValueError(f'{type(model).__name__} has no {self.backbone_prefix!r} module for layer-wise lr '
                                 'decay; set paramwise_cfg.backbone_prefix')
            module = getattr(module, part)
        return module

    def add_params(self, params: List[Dict], module: nn.Module, prefix: str = '', is_dcn_module=None) -> None:
        """Make mmengine's parameter groups (one per parameter), then scale each group's lr by its layer."""
        if prefix:  # recursive calls of the parent
            return super().add_params(params, module, prefix, is_dcn_module)
        layout = swin_layout(self._backbone(module))
        depths = list(layout.depths)
        num_layers = sum(depths) + 1 if self.num_layers is None else int(self.num_layers)
        if num_layers < sum(depths) + 1:
            raise ValueError(f'num_layers={num_layers} is below the number of backbone layers ({sum(depths) + 1} '
                             f'for depths {depths}); leave it unset')
        start = len(params)
        super().add_params(params, module, prefix, is_dcn_module)
        names = {id(p): n for n, p in module.named_parameters(remove_duplicate=False)}
        bb_prefix = self.backbone_prefix + '.'
        counts: Dict[int, int] = {}
        for group in params[start:]:
            name = names[id(group['params'][0])]
            layer_id = swin_layer_id(name, depths, num_layers, bb_prefix, layout.stages)
            scale = self.decay_rate ** (num_layers - layer_id)
            group['lr'] = group.get('lr', self.base_lr) * scale
            group.update(param_name=name, layer_id=layer_id, lr_scale=scale)
            counts[layer_id] = counts.get(layer_id, 0) + 1
        print_log(f'SwinV2LayerDecayOptimizerConstructor: backbone {layout.backbone_type} '
                  f'(stages in {self.backbone_prefix}.{layout.stages}), decay_rate={self.decay_rate}, '
                  f'num_layers={num_layers}, depths={depths}; lr scale {self.decay_rate ** num_layers:.4g} '
                  f'(patch_embed) to 1 (top: neck, heads, output norms); parameters per layer id: '
                  f'{dict(sorted(counts.items()))}', logger='current')


__all__ = ['SwinV2LayerDecayOptimizerConstructor', 'SwinLayout', 'SWIN_STAGE_ATTRS', 'swin_layout', 'swin_layer_id',
           'swinv2_layer_id']
