"""Loading SwinV2 checkpoints of any known layout into :class:`SwinTransformerV2`, with a coverage report.

Files are read safely (``read.py``: weights_only / safetensors) and converted with
``convert.convert_state_dict``. Loading never falls back to random weights silently: a checkpoint
that matches nothing, has tensors with no place in the backbone, or disagrees in any shape raises;
what was loaded, missing or unexpected is logged.
"""
import logging
from typing import Dict, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log

from ..arch import per_stage
from .convert import META_PRETRAINED_WINDOW, Conversion, convert_state_dict
from .errors import CheckpointError
from .read import read_checkpoint
from .windows import pretrained_window_from_name

__all__ = ['CheckpointError', 'load_pretrained', 'read_checkpoint', 'to_backbone_state_dict']


def to_backbone_state_dict(state_dict: Dict[str, torch.Tensor], layout: str = 'auto',
                           num_stages: int = 4) -> Tuple[Dict[str, torch.Tensor], str]:
    """Convert a state dict of any known layout to this package's backbone keys.

    Window-dependent buffers, the classification head and pre-training-only tensors are dropped;
    the final ``norm`` becomes the last stage's output norm ``norm{num_stages-1}``.

    Returns:
        (backbone state dict, layout name).

    Raises:
        CheckpointError: the checkpoint has another number of stages, or see :func:`convert_state_dict`.
    """
    conversion = _convert(state_dict, layout, num_stages)
    return conversion.state_dict, conversion.layout


def _convert(state_dict: Dict[str, torch.Tensor], layout: str, num_stages: int) -> Conversion:
    conversion = convert_state_dict(state_dict, layout)
    if conversion.arch.num_stages != num_stages:
        raise CheckpointError(f'the checkpoint has {conversion.arch.num_stages} stages ({conversion.arch.describe()}), '
                              f'the model {num_stages}; configure the backbone arch to match the checkpoint')
    return conversion


def load_pretrained(model: nn.Module, path: str, layout: str = 'auto') -> Dict[str, Sequence[str]]:
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
    conversion = _convert(raw, layout, len(model.layers))
    state_dict, layout = conversion.state_dict, conversion.layout
    own = model.state_dict()
    mismatched = [f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}'
                  for k, v in state_dict.items() if k in own and v.shape != own[k].shape]
    if mismatched:
        raise CheckpointError(
            f'{path!r} ({layout} layout) does not fit this SwinTransformerV2: {len(mismatched)} shape(s) differ, '
            'so it was trained with another arch (embed_dims / depths / num_heads):\n  ' + '\n  '.join(mismatched))
    loaded = [k for k in state_dict if k in own]
    if not loaded:
        raise CheckpointError(f'{path!r} ({layout} layout) matched none of the model\'s parameters; '
                              'convert it with tools/convert_checkpoint.py')
    unexpected = sorted(set(state_dict) - set(own))
    missing = sorted(set(own) - set(state_dict))
    model.load_state_dict({k: state_dict[k] for k in loaded}, strict=False)
    trained = meta.get(META_PRETRAINED_WINDOW)
    if trained is None:
        by_name = pretrained_window_from_name(path) if len(model.layers) == 4 else None
        trained = conversion.coords_pretrained_window or by_name
    _check_pretrained_window(model, trained, path)
    print_log(f'SwinTransformerV2: loaded {len(loaded)}/{len(own)} model tensors from {path} ({layout} layout); '
              f'missing {len(missing)}: {_short(missing)}; unexpected {len(unexpected)}: {_short(unexpected)}; '
              f'source {conversion.coverage()}', logger='current')
    return dict(loaded=loaded, missing=missing, unexpected=unexpected)


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


def _short(keys: Sequence[str], limit: int = 8) -> str:
    return ', '.join(keys[:limit]) + (f', ... (+{len(keys) - limit})' if len(keys) > limit else '') if keys else '-'
