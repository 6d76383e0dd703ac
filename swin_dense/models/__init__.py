from .backbones import SwinTransformerV2

__all__ = ['SwinTransformerV2']
