#!/usr/bin/env python
"""Publish a trained checkpoint: keep the weights and meta, drop the training state, name it by its hash.

    python tools/publish_model.py IN_FILE OUT_FILE [--save-keys meta state_dict]

What mmdet's / mmseg's ``tools/model_converters/publish_model.py`` does, for this package's
checkpoints, which those tools cannot read (``UnpicklingError ... HistoryBuffer``: they never
import swin_dense, and torch >= 2.6 loads with ``weights_only=True``):

1. read IN_FILE with ``torch.load(weights_only=True)`` and mmengine's checkpoint types allowed for
   this one read (:func:`swin_dense.engine.safe_load.load`; any other Python object in the file is
   refused, nothing is loaded unsafely);
2. keep only ``--save-keys`` (default ``meta`` and ``state_dict``, as mmdet's tool): the optimizer,
   param_schedulers, message_hub (loss logs) and rng_state are dropped;
3. turn the numpy values that mmengine puts into ``meta`` into plain Python ones, so that the file
   holds only tensors and plain containers and loads with a plain ``torch.load(weights_only=True)``
   (mmdet's ``init_detector``, mmseg's ``init_model``) without swin_dense or any allowlist;
4. save it and name it ``OUT_FILE`` with ``-<first 8 hex digits of its sha256>`` before ``.pth``,
   written atomically (a temporary file renamed into place). The path is printed.

See docs/training.md ("Publishing a checkpoint").
"""
import argparse
import hashlib
import io
import os.path as osp
import pickle
import sys
import warnings
from typing import Any, Dict, Sequence

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without install
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')  # mmengine 0.10 imports it

import numpy as np  # noqa: E402
import torch  # noqa: E402

from swin_dense.engine.atomic_backend import atomic_write  # noqa: E402
from swin_dense.engine.safe_load import load  # noqa: E402

DEFAULT_SAVE_KEYS = ('meta', 'state_dict')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Strip a training checkpoint to its weights and meta, named by hash')
    parser.add_argument('in_file', help='checkpoint written by tools/train.py')
    parser.add_argument('out_file', help='output path; the published file is OUT_FILE minus .pth, -<sha256[:8]>.pth')
    parser.add_argument('--save-keys', nargs='+', default=list(DEFAULT_SAVE_KEYS),
                        help='top-level keys kept (default: meta state_dict)')
    return parser.parse_args(argv)


def plain(value: Any) -> Any:
    """``value`` with numpy scalars and arrays (nested in dicts, lists, tuples) as Python numbers and lists."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def publish(in_file: str, out_file: str, save_keys: Sequence[str] = DEFAULT_SAVE_KEYS) -> str:
    """Write the published checkpoint (see the module docstring); returns its path.

    Raises:
        pickle.UnpicklingError: IN_FILE holds Python objects outside the allowlist.
        ValueError: IN_FILE is no checkpoint dict or has none of ``save_keys``, or a kept value would
            still need an allowlist to load.
    """
    checkpoint = load(in_file, map_location='cpu')
    if not isinstance(checkpoint, dict):
        raise ValueError(f'{in_file!r} holds a {type(checkpoint).__name__}, not a checkpoint dict')
    # the state dict as it is (its OrderedDict carries the modules' _metadata); numpy out of the rest
    kept: Dict[str, Any] = {k: checkpoint[k] if k == 'state_dict' else plain(checkpoint[k])
                            for k in save_keys if k in checkpoint}
    if not kept:
        raise ValueError(f'{in_file!r} has none of the keys {list(save_keys)} (it has {sorted(checkpoint)})')
    for key in sorted(set(checkpoint) - set(kept)):
        print(f'dropped {key!r}')
    buffer = io.BytesIO()
    torch.save(kept, buffer)
    # load() allowed mmengine's types for its own call only: what is left over would need them
    unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(io.BytesIO(buffer.getvalue()))
    if unsafe:
        raise ValueError(f'the kept keys {sorted(kept)} hold objects that torch.load(weights_only=True) refuses '
                         f'({", ".join(sorted(unsafe))}); leave those keys out with --save-keys')
    data = buffer.getvalue()
    stem = out_file[:-len('.pth')] if out_file.endswith('.pth') else out_file
    final = f'{stem}-{hashlib.sha256(data).hexdigest()[:8]}.pth'
    atomic_write(final, data)
    return final


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        final = publish(args.in_file, args.out_file, args.save_keys)
    except FileNotFoundError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    except (pickle.UnpicklingError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f'error: cannot publish {args.in_file}: {first}', file=sys.stderr)
        return 2
    print(f'published {final}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
