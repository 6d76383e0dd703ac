"""Safe checkpoint reading and loading into :class:`SwinTransformerV2`, with a coverage report.

Weights from outside are only ever read with ``torch.load(weights_only=True)`` or safetensors, so a
file carrying a pickled payload is refused instead of run. Loading never falls back to random
weights silently: a checkpoint that matches nothing, or any shape disagreement, raises.
"""
import json
import os
import pickle
import re
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log

from .detect import detect_layout
from .layouts import LAYOUTS

# Buffers that the official code and timm store and that depend on the window: regenerated here.
_WINDOW_BUFFERS = re.compile(r'(relative_coords_table|relative_position_index|attn_mask)$')
_WRAPPER_KEYS = ('state_dict', 'model', 'module', 'params')
META_PRETRAINED_WINDOW = 'pretrained_window_size'


class CheckpointError(ValueError):
    """A checkpoint file that cannot or must not be loaded; the message says why and what to do."""


def read_checkpoint(path: str) -> Tuple[Dict[str, torch.Tensor], Dict]:
    """Read a state dict and its meta from ``.pth``/``.pt``/``.bin`` (safe unpickler) or ``.safetensors``.

    Wrappers (``{'model': ...}``, ``{'state_dict': ...}``) and a ``module.`` prefix are removed.

    Returns:
        (state_dict, meta); meta is ``checkpoint['meta']`` or the safetensors metadata, else {}.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: empty, truncated or corrupt file, or one with pickled objects beyond tensors.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint {path!r} does not exist; check the path in init_cfg / the command line')
    if os.path.getsize(path) == 0:
        raise CheckpointError(f'checkpoint {path!r} is empty (0 bytes); download or copy it again')
    if path.endswith('.safetensors'):
        return _read_safetensors(path)
    try:
        obj = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f'refusing to load {path!r}: it contains pickled Python objects other than tensors ({first}). '
            'Unpickling them could run arbitrary code. If the file comes from a source you trust, re-save only its '
            'tensors (a plain state dict or .safetensors) and load that.') from None
    except (RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(f'checkpoint {path!r} is truncated or corrupt ({err}); download or copy it again') from None
    meta = obj.get('meta', {}) if isinstance(obj, dict) else {}
    return _unwrap(obj, path), meta if isinstance(meta, dict) else {}


def _read_safetensors(path: str) -> Tuple[Dict[str, torch.Tensor], Dict]:
    from safetensors import SafetensorError, safe_open
    try:
        with safe_open(path, framework='pt') as f:
            state_dict = {k: f.get_tensor(k) for k in f.keys()}
            raw_meta = f.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f'safetensors file {path!r} is truncated or corrupt ({err})') from None
    meta = {k: json.loads(v) if v[:1] in '[{0123456789' else v for k, v in raw_meta.items()}
    return _unwrap(state_dict, path), meta


def _unwrap(obj, path: str) -> Dict[str, torch.Tensor]:
    while isinstance(obj, dict):
        inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, dict) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f'{path!r} holds no state dict of tensors')
    state_dict = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if all(k.startswith('module.') for k in state_dict):
        state_dict = {k[len('module.'):]: v for k, v in state_dict.items()}
    # A whole detector / segmentor checkpoint: keep the backbone.
    if any(k.startswith('backbone.') for k in state_dict):
        state_dict = {k[len('backbone.'):]: v for k, v in state_dict.items() if k.startswith('backbone.')}
    return state_dict


def to_backbone_state_dict(state_dict: Dict[str, torch.Tensor], layout: str = 'auto',
                           num_stages: int = 4) -> Tuple[Dict[str, torch.Tensor], str]:
    """Convert a state dict of any known layout to this package's backbone keys.

    Window-dependent buffers and the classification head are dropped; the final ``norm`` becomes
    the last stage's output norm ``norm{num_stages-1}``.

    Returns:
        (backbone state dict, layout name).
    """
    if layout == 'auto':
        layout = detect_layout(state_dict)
    elif layout not in LAYOUTS:
        raise ValueError(f'unknown layout {layout!r}; use auto or one of {sorted(LAYOUTS)}')
    official = LAYOUTS[layout].to_official(state_dict)
    out = {}
    for key, value in official.items():
        if _WINDOW_BUFFERS.search(key) or key.startswith('head.'):
            continue
        if key.startswith('norm.'):
            key = f'norm{num_stages - 1}.' + key[len('norm.'):]
        out[key] = value
    return out, layout


def load_pretrained(model: nn.Module, path: str, layout: str = 'auto') -> Dict[str, Sequence[str]]:
    """Load a SwinV2 checkpoint of any known layout into ``model`` and log what was loaded.

    Args:
        model: a :class:`SwinTransformerV2`.
        path: checkpoint file.
        layout: 'auto' or a layout name.

    Returns:
        dict with the ``loaded``, ``missing`` and ``unexpected`` key lists.

    Raises:
        CheckpointError: nothing matches, or shapes disagree (all mismatches listed).
    """
    raw, meta = read_checkpoint(path)
    state_dict, layout = to_backbone_state_dict(raw, layout, num_stages=len(model.layers))
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
    _check_pretrained_window(model, meta, path)
    print_log(f'SwinTransformerV2: loaded {len(loaded)}/{len(own)} tensors from {path} ({layout} layout); '
              f'missing {len(missing)}: {_short(missing)}; unexpected {len(unexpected)}: {_short(unexpected)}',
              logger='current')
    return dict(loaded=loaded, missing=missing, unexpected=unexpected)


def _check_pretrained_window(model: nn.Module, meta: Dict, path: str) -> None:
    trained = meta.get(META_PRETRAINED_WINDOW)
    if trained is None:
        return
    trained = [int(trained)] * len(model.layers) if isinstance(trained, int) else [int(w) for w in trained]
    if trained != list(model.pretrained_window_size):
        print_log(f'{path} was trained with pretrained_window_size={trained}, but the model is configured with '
                  f'{list(model.pretrained_window_size)}: the position bias MLP will see coordinates at another '
                  f'scale. Set pretrained_window_size={trained} in the backbone config.',
                  logger='current', level=30)


def _short(keys: Sequence[str], limit: int = 8) -> str:
    return ', '.join(keys[:limit]) + (f', ... (+{len(keys) - limit})' if len(keys) > limit else '') if keys else '-'
