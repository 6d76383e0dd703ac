"""Loading a SwinV2 checkpoint of any known layout into :class:`SwinTransformerV2`, with a coverage report.

What ``init_cfg=dict(type='Pretrained', checkpoint=...)`` runs (``SwinTransformerV2.init_weights``).
The file is read safely and converted by :mod:`swin_dense.checkpoint`, which works on state dicts
only; this module holds what needs the model: the fit check against its own tensors, the load, the
log line and the pretrained-window warning. Loading never falls back to random weights silently: a
checkpoint that matches nothing, has tensors with no place in the backbone, another number of
stages, or disagrees in any shape raises; what was loaded, missing or unexpected is logged.
"""
import logging
from typing import Dict, List, Optional, Sequence, Union

import torch.nn as nn
from mmengine.logging import print_log

from ...arch import per_stage
from ...checkpoint import CheckpointError, convert_state_dict, fit_state_dict, read_checkpoint, short_keys
from ...checkpoint.windows import META_PRETRAINED_WINDOW, pretrained_window_from_name

__all__ = ['load_pretrained', 'pretrained_init_cfg', 'registry_pretrained_window']


def pretrained_init_cfg(pretrained: Optional[str], init_cfg: Optional[Dict]) -> Optional[Dict]:
    """The ``init_cfg`` that mmseg's ``model.pretrained`` (pushed into ``backbone.pretrained``) stands for.

    Raises:
        ValueError: both ``pretrained`` and a ``Pretrained`` ``init_cfg`` are set.
    """
    if pretrained is None:
        return init_cfg
    if not isinstance(pretrained, str):
        raise TypeError(f'pretrained must be a checkpoint path, URL or name, got {type(pretrained).__name__}')
    if init_cfg is not None:
        raise ValueError(f'SwinTransformerV2 got both pretrained={pretrained!r} (mmseg\'s model.pretrained) and '
                         f'init_cfg={init_cfg!r}: set only one of them (e.g. model.pretrained=None)')
    return dict(type='Pretrained', checkpoint=pretrained, source='model.pretrained')


def registry_pretrained_window(init_cfg: Optional[Dict], configured: List[int]) -> List[int]:
    """``pretrained_window_size`` per stage, filled or checked from the checkpoint registry.

    Args:
        init_cfg: the backbone's ``init_cfg``.
        configured: the configured ``pretrained_window_size`` per stage.
    """
    return configured


def load_pretrained(model: nn.Module, path: str, layout: str = 'auto') -> Dict[str, List[str]]:
    """Load a SwinV2 checkpoint of any known layout into ``model`` and log what was loaded.

    The log line gives the model tensors loaded / missing / unexpected and the source coverage
    (tensors used / dropped and why). When the checkpoint tells its pretrained window (meta written
    by tools/convert_checkpoint.py, stored coordinate tables, or a released file name) and the
    model is configured otherwise, a warning says which ``pretrained_window_size`` to set.

    Args:
        model: a :class:`SwinTransformerV2`.
        path: checkpoint file or Hugging Face model folder.
        layout: 'auto' or a layout name.

    Returns:
        dict with the ``loaded``, ``missing`` and ``unexpected`` key lists.

    Raises:
        CheckpointError: nothing matches (``SwinV1Checkpoint`` for Swin V1 weights, saying to use
            mmdet's / mmseg's SwinTransformer and tools/convert_checkpoint.py), tensors with no place
            in the backbone, another number of stages, or shapes disagree (all mismatches listed).
    """
    raw, meta = read_checkpoint(path)
    conversion = convert_state_dict(raw, layout, num_stages=len(model.layers))
    state_dict, layout = conversion.state_dict, conversion.layout
    own = model.state_dict()
    fit = fit_state_dict(state_dict, own)
    if fit.mismatched:
        raise CheckpointError(
            f'{path!r} ({layout} layout) does not fit this SwinTransformerV2: {len(fit.mismatched)} shape(s) differ, '
            'so it was trained with another arch (embed_dims / depths / num_heads):\n  ' + '\n  '.join(fit.mismatched))
    if fit.none_present:
        raise CheckpointError(f'{path!r} ({layout} layout) matched none of the model\'s parameters; '
                              'convert it with tools/convert_checkpoint.py')
    model.load_state_dict({k: state_dict[k] for k in fit.loaded}, strict=False)
    trained = meta.get(META_PRETRAINED_WINDOW)
    if trained is None:
        by_name = pretrained_window_from_name(path) if len(model.layers) == 4 else None
        trained = conversion.coords_pretrained_window or by_name
    _check_pretrained_window(model, trained, path)
    print_log(f'SwinTransformerV2: loaded {len(fit.loaded)}/{len(own)} model tensors from {path} ({layout} layout); '
              f'missing {len(fit.missing)}: {short_keys(fit.missing, 8)}; unexpected {len(fit.unexpected)}: '
              f'{short_keys(fit.unexpected, 8)}; source {conversion.coverage()}', logger='current')
    return dict(loaded=fit.loaded, missing=fit.missing, unexpected=fit.unexpected)


def _check_pretrained_window(model: nn.Module, trained: Union[None, int, Sequence[int]], path: str) -> None:
    """Warn when the window the checkpoint's CPB MLP was fit in differs from the model's setting.

    A stage configured with 0 normalises by its own window, so 0 agrees with a checkpoint window
    equal to the model's ``window_size`` there.
    """
    if trained is None:
        return
    trained = per_stage(trained, len(model.layers), 'pretrained_window_size')
    configured = list(model.pretrained_window_size)
    effective = [p if p > 0 else w for p, w in zip(configured, model.window_size)]
    if trained != effective:
        print_log(f'{path} was trained with pretrained_window_size={trained}, but the model is configured with '
                  f'{configured} (window_size={list(model.window_size)}): the position bias MLP will see coordinates '
                  f'at another scale. Set pretrained_window_size={trained} in the backbone config.',
                  logger='current', level=logging.WARNING)
