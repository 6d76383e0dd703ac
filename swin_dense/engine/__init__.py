"""Training pieces the configs use: layer-wise lr decay, safe checkpoint loading, hooks.

Importing this package registers ``SwinV2LayerDecayOptimizerConstructor`` in mmengine's root
``OPTIM_WRAPPER_CONSTRUCTORS`` and allows mmengine's checkpoint types under
``torch.load(weights_only=True)`` (see :mod:`swin_dense.engine.safe_load`).
"""
from .layer_decay import SwinV2LayerDecayOptimizerConstructor, swinv2_layer_id
from .safe_load import install as install_safe_load
from .safe_load import safe_globals

install_safe_load()

__all__ = ['SwinV2LayerDecayOptimizerConstructor', 'swinv2_layer_id', 'install_safe_load', 'safe_globals']
