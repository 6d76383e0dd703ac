"""Layer-wise learning-rate decay for detectors and segmentors, from the backbone's own layer ids.

``SwinV2LayerDecayOptimizerConstructor`` is registered in mmengine's root
``OPTIM_WRAPPER_CONSTRUCTORS`` registry, so configs in the mmdet and mmseg scopes find it::

    optim_wrapper = dict(
        type='OptimWrapper',
        constructor='SwinV2LayerDecayOptimizerConstructor',
        optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
        paramwise_cfg=dict(
            decay_rate=0.9,          # lr scale per layer below the top
            num_layers=None,         # None: the backbone's top layer id (sum(depths) + 1 for Swin)
            norm_decay_mult=0.,      # no weight decay on any normalisation layer
            custom_keys={'cpb_mlp': dict(decay_mult=0.), 'logit_scale': dict(decay_mult=0.),
                         'q_bias': dict(decay_mult=0.), 'v_bias': dict(decay_mult=0.),
                         # the Swin V1 equivalents (they match no SwinV2 parameter)
                         'relative_position_bias_table': dict(decay_mult=0.),
                         'absolute_pos_embed': dict(decay_mult=0.)}))

The registry name is the one the configs and documented commands use (mmseg's scope already
has a ``LayerDecayOptimizerConstructor`` of its own, for BEiT/ConvNeXt, which it would find first).

**Layer ids come from the backbone.** A backbone with ``get_layer_depth(param_name, prefix)``
(mmpretrain's convention: this package's ``SwinTransformerV2``, and mmpretrain's ViT, Swin V1,
ConvNeXt, ... but not its SwinTransformerV2, which has none) is asked for every parameter; it
returns ``(layer_depth, num_layers)``, from 0 (the stem) to ``num_layers - 1`` (the top: output
norms, and the neck and heads outside ``prefix``). mmdet's and
mmseg's Swin V1 ``SwinTransformer`` (and subclasses) have no such method; for them (only) the
constructor falls back to :func:`swin_v1_layer_depth`, the same numbering over their ``stages``, so
a V1 config inherits the optimizer of its V2 parent unchanged (``configs/cascade_swin_*_coco.py``).
Any other backbone is refused with an error that says what to add.

The Swin numbering (official Swin / SimMIM; ``D = sum(depths)``; ``S`` = ``layers`` for SwinV2,
``stages`` for Swin V1; see :mod:`swin_dense.models.backbones.layer_depth`):

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

Here ``num_layers`` is ``paramwise_cfg.num_layers``: the id of the top layer, by default the
backbone's (``D + 1`` for Swin; a larger value raises only the top's id, so every layer below it
gets a smaller rate). The learning rate of a
parameter is ``base_lr * lr_mult * decay_rate ** (num_layers - layer_id)``: the patch embedding gets
``decay_rate ** (D + 1)``, the last block ``decay_rate``, and the neck and heads the full rate. The
output norms sit at the top, as the official code treats its final ``norm`` (which becomes ``norm3``
here) and as newly added layers should.

Everything mmengine's ``DefaultOptimWrapperConstructor`` does (``custom_keys`` with ``lr_mult``
and ``decay_mult``, ``norm_decay_mult``, ``bias_decay_mult``, ...) applies first; the layer scale
multiplies the resulting learning rate. Each parameter group records ``param_name``, ``layer_id``
and ``lr_scale``.
"""
from typing import Callable, Dict, List, Optional, Tuple

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS

from ..models.backbones.layer_depth import swin_layer_depth

#: ``(param_name, prefix) -> (layer_depth, num_layers)``, mmpretrain's ``get_layer_depth`` signature
LayerDepthFn = Callable[[str, str], Tuple[int, int]]

#: backbones without ``get_layer_depth`` that the fallback numbers (subclasses included): Swin V1
#: with its stages in ``stages``, each ``blocks`` followed by an optional ``downsample``
SWIN_V1_BACKBONES = ('mmdet.models.backbones.swin.SwinTransformer', 'mmseg.models.backbones.swin.SwinTransformer')


def _qualified_name(cls: type) -> str:
    return f'{cls.__module__}.{cls.__qualname__}'


class SwinV1LayerDepth:
    """``get_layer_depth`` for an mmdet / mmseg Swin V1 ``SwinTransformer``, which has none.

    Attributes:
        depths: blocks per stage, read from the module (``len(stage.blocks)``).
        stages: the backbone's stage attribute, ``'stages'``.
    """

    stages = 'stages'

    def __init__(self, backbone: nn.Module) -> None:
        self.depths = tuple(len(stage.blocks) for stage in getattr(backbone, self.stages))

    def __call__(self, param_name: str, prefix: str = '') -> Tuple[int, int]:
        """``(layer_depth, num_layers)`` of ``param_name``, numbered as the SwinV2 backbone's."""
        return swin_layer_depth(param_name, self.depths, prefix, stages=self.stages)


def swin_v1_layer_depth(backbone: nn.Module) -> SwinV1LayerDepth:
    """The fallback layer ids of an mmdet / mmseg Swin V1 backbone (a subclass of one works too).

    Raises:
        ValueError: ``backbone`` is none of :data:`SWIN_V1_BACKBONES`; the message says to give it a
            ``get_layer_depth`` or to use the default constructor.
    """
    if not any(_qualified_name(cls) in SWIN_V1_BACKBONES for cls in type(backbone).__mro__):
        raise ValueError(
            f'layer-wise lr decay does not know the backbone {_qualified_name(type(backbone))}: it has no '
            'get_layer_depth(param_name, prefix) method (as SwinTransformerV2 and mmpretrain backbones have) and '
            f'is not one of {list(SWIN_V1_BACKBONES)}. Add that method to the backbone, or use the default '
            'constructor (remove optim_wrapper.constructor)')
    return SwinV1LayerDepth(backbone)


def backbone_layer_depth(backbone: nn.Module) -> LayerDepthFn:
    """The backbone's ``get_layer_depth``, or the Swin V1 fallback (:func:`swin_v1_layer_depth`)."""
    method = getattr(backbone, 'get_layer_depth', None)
    return method if callable(method) else swin_v1_layer_depth(backbone)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class SwinV2LayerDecayOptimizerConstructor(DefaultOptimWrapperConstructor):
    """Layer-wise lr decay over the layer ids of the model's backbone (see the module docs).

    ``paramwise_cfg`` keys besides mmengine's: ``decay_rate`` (default 1.0, i.e. no decay),
    ``num_layers`` (the top layer id; default the backbone's, ``sum(depths) + 1`` for Swin),
    ``backbone_prefix`` (default ``'backbone'``).
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
        backbone = self._backbone(module)
        layer_depth = backbone_layer_depth(backbone)
        bb_prefix = self.backbone_prefix + '.'
        start = len(params)
        super().add_params(params, module, prefix, is_dcn_module)
        names = {id(p): n for n, p in module.named_parameters(remove_duplicate=False)}
        groups = [(group, names[id(group['params'][0])]) for group in params[start:]]
        depths = {name: layer_depth(name, bb_prefix) for _, name in groups}
        top = max((total - 1 for _, total in depths.values()), default=0)
        num_layers = top if self.num_layers is None else int(self.num_layers)
        if num_layers < top:
            raise ValueError(f'num_layers={num_layers} is below the top layer id of the backbone '
                             f'({top}, from its get_layer_depth); leave it unset')
        counts: Dict[int, int] = {}
        for group, name in groups:
            depth, total = depths[name]
            layer_id = num_layers if depth >= total - 1 else depth
            scale = self.decay_rate ** (num_layers - layer_id)
            group['lr'] = group.get('lr', self.base_lr) * scale
            group.update(param_name=name, layer_id=layer_id, lr_scale=scale)
            counts[layer_id] = counts.get(layer_id, 0) + 1
        source = 'the Swin V1 fallback' if isinstance(layer_depth, SwinV1LayerDepth) else 'its get_layer_depth'
        print_log(f'SwinV2LayerDecayOptimizerConstructor: backbone {_qualified_name(type(backbone))} '
                  f'(layer ids from {source}), decay_rate={self.decay_rate}, num_layers={num_layers}; lr scale '
                  f'{self.decay_rate ** num_layers:.4g} (stem) to 1 (top: neck, heads, output norms); '
                  f'parameters per layer id: {dict(sorted(counts.items()))}', logger='current')


__all__ = ['SwinV2LayerDecayOptimizerConstructor', 'SWIN_V1_BACKBONES', 'SwinV1LayerDepth', 'backbone_layer_depth',
           'swin_v1_layer_depth']
