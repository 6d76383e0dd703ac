"""swin_dense: Swin Transformer V2 for dense prediction with OpenMMLab (mmdet 3.x, mmsegmentation 1.x).

Importing it registers ``SwinTransformerV2`` (and the engine pieces the configs use) in mmengine's
root registries, where mmdet's and mmseg's scopes find them.
"""
from . import checkpoint, datasets, engine, models  # noqa: F401
from .models import SwinTransformerV2

__version__ = '0.1.0'
__all__ = ['SwinTransformerV2', '__version__']
