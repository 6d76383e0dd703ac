"""Layer ids of Swin backbones for layer-wise lr decay, in mmpretrain's ``get_layer_depth`` convention.

``swin_layer_depth(name, depths, prefix)`` returns ``(layer_depth, num_layers)`` with
``num_layers = sum(depths) + 2``: the stem (patch embedding) is 0, block ``j`` of stage ``i`` is
``sum(depths[:i]) + j + 1``, the patch merging at the end of stage ``i`` shares the id of the
stage's last block, and everything else (output norms, and every name outside ``prefix``: neck,
heads) is the top, ``num_layers - 1``. This is the official Swin / SimMIM numbering, and the one
mmpretrain's own Swin V1 ``SwinTransformer.get_layer_depth`` uses.
"""
from typing import Sequence, Tuple

#: parameters that belong to the stem (layer 0): the patch embedding, and Swin V1's absolute position embedding
STEM = ('patch_embed', 'absolute_pos_embed')


def swin_layer_depth(param_name: str, depths: Sequence[int], prefix: str = '',
                     stages: str = 'layers') -> Tuple[int, int]:
    """Layer id of a parameter of a Swin backbone whose stages end with their patch merging.

    Args:
        param_name: parameter name, e.g. ``backbone.layers.1.blocks.0.attn.qkv.weight``.
        depths: blocks per stage.
        prefix: where the backbone sits in the model (``'backbone.'``); other names are the top layer.
        stages: the backbone's attribute holding its stages: ``'layers'`` (SwinV2, official names),
            ``'stages'`` (mmdet's / mmseg's Swin V1).

    Returns:
        ``(layer_depth, num_layers)``, ``0 <= layer_depth < num_layers = sum(depths) + 2``.
    """
    num_layers = sum(depths) + 2
    if not param_name.startswith(prefix):
        return num_layers - 1, num_layers
    parts = param_name[len(prefix):].split('.')
    if parts[0] in STEM:
        return 0, num_layers
    if parts[0] == stages and len(parts) > 3:
        stage = int(parts[1])
        if parts[2] == 'blocks':
            return sum(depths[:stage]) + int(parts[3]) + 1, num_layers
        if parts[2] == 'downsample':
            return sum(depths[:stage + 1]), num_layers
    return num_layers - 1, num_layers
