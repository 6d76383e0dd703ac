"""Loading a SwinV2 checkpoint of any known layout into :class:`SwinTransformerV2`, with a coverage report.

What ``init_cfg=dict(type='Pretrained', checkpoint=...)`` runs (``SwinTransformerV2.init_weights``).
The file is read safely and converted by :mod:`swin_dense.checkpoint`, which works on state dicts
only; this module holds what needs the model: the fit check against its own tensors, the load, the
log line and the pretrained-window warning. Loading never falls back to random weights silently: a
checkpoint that matches nothing, has tensors with no place in the backbone, another number of
stages, or disagrees in any shape raises; what was loaded, missing or unexpected is logged.
"""
import logging
import re
from typing import Dict, List, Optional, Sequence, Union

import torch.nn as nn
from mmengine.logging import print_log

from ...arch import per_stage
from ...checkpoint import CheckpointError, convert_state_dict, fit_state_dict, read_checkpoint, short_keys
from ...checkpoint.windows import META_PRETRAINED_WINDOW, pretrained_window_from_name
from ...checkpoint.zoo import zoo_entry

__all__ = ['load_pretrained', 'pretrained_init_cfg', 'registry_pretrained_window']

# Output norms: new layers of the dense backbone (a classification checkpoint has at most the last one),
# and only those in the model's out_indices exist; absent or extra, they never make a load partial.
_OUTPUT_NORM = re.compile(r'^norm\d+\.')


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

    When ``init_cfg`` loads a zoo name (:mod:`swin_dense.checkpoint.zoo`) of a SwinV2 checkpoint, a
    configuration left at 0 in every stage gets the registry's windows, and any other configuration
    must equal them. Paths, URLs and hub ids return ``configured`` unchanged (the loader warns when
    the checkpoint tells another window).

    Args:
        init_cfg: the backbone's ``init_cfg``.
        configured: the configured ``pretrained_window_size`` per stage.

    Raises:
        ValueError: the configuration differs from the registry's (naming ``pretrained_window_size``
            and the value to set), or the zoo checkpoint is Swin V1 or has another number of stages.
    """
    if not isinstance(init_cfg, dict) or init_cfg.get('type') != 'Pretrained':
        return configured
    name = init_cfg.get('checkpoint')
    entry = zoo_entry(name) if isinstance(name, str) else None
    if entry is None:
        return configured
    if entry.pretrained_window is None:
        raise ValueError(f'{name!r} is a Swin V1 checkpoint, which SwinTransformerV2 cannot use: load it into '
                         "mmdet's / mmseg's SwinTransformer after tools/convert_checkpoint.py (docs/checkpoints.md)")
    registry = list(entry.pretrained_window)
    if len(configured) != len(registry):
        raise ValueError(f'{name!r} has {len(registry)} stages ({entry.arch}); this backbone has {len(configured)}: '
                         f"set arch='{entry.arch}'")
    if all(p == 0 for p in configured):
        return registry
    if configured != registry:
        raise ValueError(f'pretrained_window_size={configured} does not match {name!r}, which was trained with '
                         f'pretrained_window_size={registry}: set pretrained_window_size={registry} (or leave it 0 '
                         'to take it from the registry)')
    return configured


def load_pretrained(model: nn.Module, checkpoint: str, layout: str = 'auto', allow_partial: bool = False,
                    setting: str = 'init_cfg') -> Dict[str, List[str]]:
    """Load a SwinV2 checkpoint of any known layout into ``model`` and log what was loaded.

    The log line gives the model tensors loaded / missing / unexpected and the source coverage
    (tensors used / dropped and why). When the checkpoint tells its pretrained window (meta written
    by tools/convert_checkpoint.py, stored coordinate tables, the registry for a zoo name, or a
    released file name) and the model is configured otherwise, a warning says which
    ``pretrained_window_size`` to set.

    Args:
        model: a :class:`SwinTransformerV2`.
        checkpoint: file, Hugging Face model folder, ``http(s)://`` URL, ``hf-hub:ORG/NAME[@REV]`` or zoo name.
        layout: 'auto' or a layout name.
        allow_partial: load a checkpoint that fills only part of the model (other depths): the
            weights it lacks keep their initial values. Missing or extra output norms ``norm{i}``
            never count as partial.
        setting: the config setting the checkpoint came from, named in errors (``'model.pretrained'``
            for mmseg's, whose stock value is another backbone's weights).

    Returns:
        dict with the ``loaded``, ``missing`` and ``unexpected`` key lists.

    Raises:
        CheckpointError: nothing matches (``SwinV1Checkpoint`` for Swin V1 weights, saying to use
            mmdet's / mmseg's SwinTransformer and tools/convert_checkpoint.py), tensors with no place
            in the backbone, another number of stages, shapes disagree (all mismatches listed), or
            weights beyond the output norms are missing or unexpected without ``allow_partial``.
        FileNotFoundError: no such file, URL, hub id or zoo name.
    """
    try:
        return _load(model, checkpoint, layout, allow_partial)
    except (CheckpointError, FileNotFoundError) as err:
        if setting != 'model.pretrained':
            raise
        raise type(err)(f"{err}\nThe checkpoint is mmseg's model.pretrained={checkpoint!r}, which mmseg passes to the "
                        'backbone: set model.pretrained=None (e.g. --cfg-options model.pretrained=None) or point it '
                        'at SwinV2 weights') from None


def _load(model: nn.Module, checkpoint: str, layout: str, allow_partial: bool) -> Dict[str, List[str]]:
    raw, meta = read_checkpoint(checkpoint)
    conversion = convert_state_dict(raw, layout, num_stages=len(model.layers))
    state_dict, layout = conversion.state_dict, conversion.layout
    own = model.state_dict()
    fit = fit_state_dict(state_dict, own)
    if fit.mismatched:
        raise CheckpointError(
            f'{checkpoint!r} ({layout} layout) does not fit this SwinTransformerV2: {len(fit.mismatched)} shape(s) '
            'differ, so it was trained with another arch (embed_dims / depths / num_heads):\n  '
            + '\n  '.join(fit.mismatched))
    if fit.none_present:
        raise CheckpointError(f'{checkpoint!r} ({layout} layout) matched none of the model\'s parameters; '
                              'convert it with tools/convert_checkpoint.py')
    missing = [k for k in fit.missing if not _OUTPUT_NORM.match(k)]
    unexpected = [k for k in fit.unexpected if not _OUTPUT_NORM.match(k)]
    if (missing or unexpected) and not allow_partial:
        raise CheckpointError(
            f'{checkpoint!r} ({layout} layout) fills only part of this SwinTransformerV2 ({len(fit.loaded)}/'
            f'{fit.num_weights} tensors): missing {len(missing)}: {short_keys(missing, 8)}; unexpected '
            f'{len(unexpected)}: {short_keys(unexpected, 8)}. It was trained with other depths: set the arch it was '
            "trained with, or load it in part with init_cfg=dict(type='Pretrained', checkpoint=..., "
            'allow_partial=True) (the weights it lacks keep their initial values)')
    model.load_state_dict({k: state_dict[k] for k in fit.loaded}, strict=False)
    trained = meta.get(META_PRETRAINED_WINDOW)
    if trained is None:
        entry = zoo_entry(checkpoint)
        by_name = pretrained_window_from_name(checkpoint) if len(model.layers) == 4 else None
        registry = list(entry.pretrained_window) if entry is not None and entry.pretrained_window else None
        trained = conversion.coords_pretrained_window or registry or by_name
    _check_pretrained_window(model, trained, checkpoint)
    print_log(f'SwinTransformerV2: loaded {len(fit.loaded)}/{len(own)} model tensors from {checkpoint} ({layout} '
              f'layout); missing {len(fit.missing)}: {short_keys(fit.missing, 8)}; unexpected {len(fit.unexpected)}: '
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
