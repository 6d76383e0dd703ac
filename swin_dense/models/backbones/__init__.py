from .swinv2 import SwinTransformerV2

__all__ = ['SwinTransformerV2']
