"""Safe reading and writing of checkpoint files.

Weights from outside are only ever read with ``torch.load(weights_only=True)`` or safetensors, so a
file carrying a pickled payload is refused instead of run. Files written here are plain dicts of
tensors (``.pth``, loadable with ``weights_only=True``) or safetensors with the meta as metadata.
"""
import json
import os
import pickle
import re
from typing import Any, Dict, Optional, Tuple

import torch

from .errors import CheckpointError
from .keys import short_keys
from .sources import resolve_checkpoint
from .windows import META_PRETRAINED_WINDOW, pretrained_window_from_hf_config

_WRAPPER_KEYS = ('state_dict', 'model', 'module', 'params')
# Weight files of a Hugging Face model folder, in order of preference.
_HF_WEIGHT_FILES = ('model.safetensors', 'pytorch_model.bin')
# transformers model types read: SwinV2, and Swin V1 (converted for mmdet/mmseg, refused by SwinTransformerV2).
_HF_MODEL_TYPES = ('swinv2', 'swin')


def read_checkpoint(source: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """Read a state dict and its meta from a file or a Hugging Face model folder: the package's one reader.

    ``source`` is a local path or anything else :func:`~swin_dense.checkpoint.sources.resolve_checkpoint`
    accepts (an ``http(s)://`` URL, ``hf-hub:ORG/NAME[@REV]``, a zoo name); what it resolves to is read
    here like any local file.

    It serves the backbone's pretrained weights, the converter and the inference predictor (whole
    detector / segmentor checkpoints). Files: ``.pth``/``.pt``/``.bin`` (``torch.load(weights_only=True)``:
    tensors, containers and the types allowlisted with ``torch.serialization.add_safe_globals``, which
    a whole mmengine training checkpoint needs) or ``.safetensors``. Folders (Hugging Face hub):
    ``model.safetensors`` or ``pytorch_model.bin``, with a transformers ``config.json`` (``model_type``
    ``swinv2``, or ``swin`` for V1) or a timm one. Wrappers (``{'state_dict': ...}``, ``{'model': ...}``)
    and a ``module.`` prefix on every key (DDP) are removed, and values that are no tensors dropped;
    every other key is kept as it is (a whole detector keeps its ``backbone.`` prefix, see
    ``convert_state_dict``).

    Returns:
        (state_dict, meta); meta is ``checkpoint['meta']``, the safetensors metadata (JSON values
        decoded) or, for a folder, ``{'pretrained_window_size': [...]}`` from its config; else {}.

    Raises:
        FileNotFoundError: no such file, folder, URL, hub id or zoo name.
        CheckpointError: an empty, truncated or corrupt file or no checkpoint at all ("not a readable
            PyTorch checkpoint"), a folder without weights, no state dict of tensors inside, or a file
            holding a Python object the safe unpickler refuses ("refusing to load", with its type).
    """
    path = resolve_checkpoint(source)
    if os.path.isdir(path):
        return _read_hf_folder(path)
    if os.path.getsize(path) == 0:
        raise CheckpointError(f'checkpoint {path!r} is empty (0 bytes); download or copy it again')
    if path.endswith('.safetensors'):
        return _read_safetensors(path)
    try:
        obj = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(_unpickling_message(path, str(err))) from None
    except Exception as err:  # noqa: BLE001  zip / EOF / OS errors of files that are no (whole) checkpoint
        raise CheckpointError(_unreadable(path, f'{type(err).__name__}: {err}')) from None
    meta = obj.get('meta', {}) if isinstance(obj, dict) else {}
    return _unwrap(obj, path), meta if isinstance(meta, dict) else {}


def _unpickling_message(path: str, error: str) -> str:
    """Why ``torch.load(weights_only=True)`` refused ``path``: a Python object it does not allow, or no checkpoint."""
    refused = re.search(r'[Uu]nsupported (?:global: )?GLOBAL (\S+)', error)
    if refused:
        return (f'refusing to load {path!r}: it holds a Python object of type {refused.group(1)}, which '
                'torch.load(weights_only=True) refuses (only tensors, containers and allowlisted plain-data types '
                'are read), since unpickling it could run arbitrary code. If the file comes from a source you trust, '
                're-save only its tensors (a plain state dict or .safetensors) and load that.')
    detail = re.search(r'WeightsUnpickler error:\s*(.+)', error)
    return _unreadable(path, f'torch.load(weights_only=True): {detail.group(1).strip() if detail else error}')


def _unreadable(path: str, detail: str) -> str:
    text = _text_start(path)
    if text is not None:
        return (f'{path!r} is a text file, not a PyTorch checkpoint (it starts with {text!r}): an error page saved '
                'in place of the download, or the wrong file; download or copy the checkpoint again')
    return (f'{path!r} is not a readable PyTorch checkpoint ({detail}): it is truncated or corrupt, or no checkpoint '
            'at all; download or copy it again')


def _text_start(path: str) -> Optional[str]:
    """The first line of ``path`` if its first bytes are printable UTF-8 text (a checkpoint never is), else None."""
    with open(path, 'rb') as f:
        head = f.read(256)
    try:
        text = head.decode('utf-8')
    except UnicodeDecodeError:
        return None
    if not text.strip() or not all(c.isprintable() or c in '\r\n\t' for c in text):
        return None
    return text.strip().splitlines()[0][:80]


def _read_safetensors(path: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    from safetensors import SafetensorError, safe_open
    try:
        with safe_open(path, framework='pt') as f:
            state_dict = {k: f.get_tensor(k) for k in f.keys()}
            raw_meta = f.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f'safetensors file {path!r} is truncated or corrupt ({err})') from None
    return _unwrap(state_dict, path), {k: _decode(v) for k, v in raw_meta.items()}


def _decode(value: str) -> Any:
    """A safetensors metadata value: JSON as :func:`write_checkpoint` writes it, else the raw string."""
    try:
        return json.loads(value)
    except ValueError:
        return value


def _read_hf_folder(path: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """A Hugging Face hub folder: transformers (config.json, model_type 'swinv2' or 'swin') or timm (no model_type)."""
    config: Dict[str, Any] = {}
    config_path = os.path.join(path, 'config.json')
    if os.path.isfile(config_path):
        with open(config_path, encoding='utf-8') as f:
            config = json.load(f)
    if config.get('model_type', 'swinv2') not in _HF_MODEL_TYPES:
        raise CheckpointError(f'{config_path} has model_type {config["model_type"]!r}, not one of {_HF_MODEL_TYPES}: '
                              'only Swin Transformer weights (V2, or V1 for mmdet/mmseg SwinTransformer) are read')
    weights = next((os.path.join(path, name) for name in _HF_WEIGHT_FILES
                    if os.path.isfile(os.path.join(path, name))), None)
    if weights is None:
        raise CheckpointError(f'folder {path!r} holds no {" or ".join(_HF_WEIGHT_FILES)} (found: '
                              f'{", ".join(sorted(os.listdir(path))) or "nothing"}); pass a checkpoint file or a '
                              'model folder. Sharded weights are not supported: SwinV2 models fit in one file')
    state_dict, _ = read_checkpoint(weights)
    windows = pretrained_window_from_hf_config(config) if config.get('model_type') == 'swinv2' else None
    return state_dict, ({} if windows is None else {META_PRETRAINED_WINDOW: windows})


def _unwrap(obj: Any, path: str) -> Dict[str, torch.Tensor]:
    while isinstance(obj, dict):
        inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, dict) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        found = f'a dict with keys {short_keys([str(k) for k in obj])}' if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f'{path!r} holds no state dict of tensors (found {found}); pass a checkpoint of weights')
    state_dict = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if all(k.startswith('module.') for k in state_dict):
        state_dict = {k[len('module.'):]: v for k, v in state_dict.items()}
    return state_dict


def write_checkpoint(state_dict: Dict[str, torch.Tensor], path: str, meta: Optional[Dict[str, Any]] = None,
                     wrapper: str = 'state_dict') -> None:
    """Write ``state_dict`` and ``meta`` so that :func:`read_checkpoint` reads them back.

    Args:
        state_dict: tensors to write.
        path: ``*.safetensors`` (meta as metadata, every value JSON-encoded) or anything
            else for ``torch.save({wrapper: state_dict, 'meta': meta})``.
        meta: JSON-compatible values (str, int, float, lists, dicts).
        wrapper: key of the state dict in a ``.pth`` file (``'model'`` for the official layout).
    """
    meta = meta or {}
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    # Separate, contiguous storage per tensor: safetensors refuses shared or strided tensors.
    tensors = {k: v.detach().contiguous().clone() for k, v in state_dict.items()}
    if path.endswith('.safetensors'):
        from safetensors.torch import save_file
        save_file(tensors, path, metadata={k: json.dumps(v) for k, v in meta.items()})
    else:
        torch.save({wrapper: tensors, 'meta': meta}, path)
