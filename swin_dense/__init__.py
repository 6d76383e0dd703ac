"""swin_dense: Swin Transformer V2 for dense prediction with OpenMMLab (mmdet 3.x, mmsegmentation 1.x).

Importing it registers two things in mmengine's root registries, where mmdet's and mmseg's scopes
find them: the backbone ``SwinTransformerV2`` (``MODELS``) and ``SwinV2LayerDecayOptimizerConstructor``
(``OPTIM_WRAPPER_CONSTRUCTORS``). Nothing else changes: the hooks, optimizer wrappers, file backend
and checkpoint allowlist that this package's configs run with are switched on by importing
:mod:`swin_dense.runtime` (every config lists it in ``custom_imports``; the tools import it).
"""
from .engine import layer_decay  # noqa: F401  registers the layer-decay optimizer constructor
from .models import SwinTransformerV2

__version__ = '0.1.0'
__all__ = ['SwinTransformerV2', '__version__']
