"""Let mmengine's own checkpoints load under ``torch.load(weights_only=True)``.

Since torch 2.6, ``torch.load`` defaults to ``weights_only=True``: its restricted unpickler only
rebuilds tensors, containers and primitive types, plus the globals explicitly allowed with
:func:`torch.serialization.add_safe_globals`. mmengine 0.10.7 calls ``torch.load`` without
``weights_only``, and the checkpoints its Runner writes carry a few other Python objects, so
``--resume``, ``load_from`` and ``tools/test.py`` fail with ``UnpicklingError: Weights only load
failed``.

This module does not switch the protection off (never ``weights_only=False``). It adds to the
allowlist exactly the types that mmengine training checkpoints contain, found by saving
checkpoints of mmdet and mmseg training runs and reading the ``UnpicklingError`` messages:

* ``message_hub.log_scalars``: :class:`mmengine.logging.HistoryBuffer` (the smoothed loss / lr /
  time logs), whose state holds numpy arrays -> numpy's array reconstructor, ``ndarray``,
  ``dtype`` and the dtype classes of the arrays; and its statistics methods, which pickle as
  ``getattr(HistoryBuffer, 'min' | 'max' | 'current' | 'mean')``. ``builtins.getattr`` itself is
  *not* allowed (it would reach any attribute of any allowed object); instead the name
  ``builtins.getattr`` is bound, for ``torch.load`` only, to :func:`history_buffer_method`, which
  returns exactly those four methods of ``HistoryBuffer`` and refuses everything else;
* ``message_hub.runtime_info`` and ``meta``: numpy scalars (e.g. a best score kept by
  ``CheckpointHook``) -> numpy's ``scalar`` reconstructor and dtype classes;
* ``param_schedulers``: ``collections.Counter`` (``MultiStepLR`` keeps its milestones in one).

All of these are plain data: rebuilding them calls no user-controlled code (``HistoryBuffer`` is
restored by its own ``__setstate__``, numpy arrays from raw bytes). Everything else - arbitrary
classes, functions, ``eval``-like reducers, ``getattr`` on anything but ``HistoryBuffer`` - is
still refused.

Two ways to use it, both explicit (importing this module changes nothing):

* :func:`install` adds the allowlist to torch for the whole process. mmengine's Runner calls
  ``torch.load`` itself (``--resume``, ``load_from``), so runs need it: :mod:`swin_dense.runtime`
  calls it, and that module is in every config's ``custom_imports`` and imported by the tools, in
  each (distributed) process. It is the one place the allowlist is installed.
* :func:`load` reads one file with the allowlist in force for that call only (``tools/publish_model.py``
  and other readers of this package's checkpoints that run no Runner).
"""
import collections
import contextlib
import os
import pickle
from typing import IO, Any, Iterator, List, Tuple, Union

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

_installed = False


def _numpy_globals() -> List[Union[Any, Tuple[Any, str]]]:
    """numpy objects that pickles of numpy arrays and scalars refer to.

    numpy 2 pickles name them ``numpy._core.multiarray.*``; numpy 1 named them
    ``numpy.core.multiarray.*``. Both spellings are registered (``(obj, name)`` pairs), so
    checkpoints written under either numpy load under the installed one.
    """
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    out: List[Union[Any, Tuple[Any, str]]] = [np.ndarray, np.dtype]
    for name in ('_reconstruct', 'scalar'):
        fn = getattr(multiarray, name)
        out += [(fn, f'numpy.core.multiarray.{name}'), (fn, f'numpy._core.multiarray.{name}')]
    # dtype classes of the numeric / bool scalars and arrays that logs and metrics produce
    for t in (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
              np.float16, np.float32, np.float64):
        out.append(type(np.dtype(t)))
    return out


_HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')


def history_buffer_method(obj: Any, name: str) -> Any:
    """Stand-in for ``getattr`` while unpickling: only ``HistoryBuffer.{min,max,current,mean}``.

    mmengine's ``HistoryBuffer.__getstate__`` stores its statistics methods, which pickle as
    ``getattr(HistoryBuffer, name)``.
    """
    if obj is HistoryBuffer and name in _HISTORY_BUFFER_METHODS:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'swin_dense safe loading: getattr({getattr(obj, "__name__", type(obj).__name__)}, {name!r}) is not allowed; '
        f'only HistoryBuffer.{{{",".join(_HISTORY_BUFFER_METHODS)}}} (mmengine logs) are')


def safe_globals() -> List[Union[Any, Tuple[Any, str]]]:
    """The allowlist added to ``torch.serialization``'s safe globals."""
    return [HistoryBuffer, collections.Counter, (history_buffer_method, 'builtins.getattr')] + _numpy_globals()


def install() -> None:
    """Register :func:`safe_globals` with torch for the rest of the process (idempotent)."""
    global _installed
    if _installed:
        return
    torch.serialization.add_safe_globals(safe_globals())
    _installed = True


@contextlib.contextmanager
def allowed() -> Iterator[None]:
    """Within the block, ``torch.load(weights_only=True)`` also reads :func:`safe_globals`.

    The entries of the allowlist that torch does not hold yet are added for the block and removed
    afterwards (entries already allowed, e.g. after :func:`install`, stay). Anything else in a file
    is refused as by ``torch.load``: ``pickle.UnpicklingError``. torch keeps the allowlist in one
    process-wide set, so do not use this from several threads while other threads load files that
    need other additions.
    """
    present = torch.serialization.get_safe_globals()
    with torch.serialization.safe_globals([entry for entry in safe_globals() if entry not in present]):
        yield


def load(f: Union[str, os.PathLike, IO[bytes]], map_location: Any = 'cpu') -> Any:
    """``torch.load(f, weights_only=True)`` with :func:`safe_globals` allowed for this call only (:func:`allowed`).

    Reads an mmengine checkpoint of this package without :func:`install`.
    """
    with allowed():
        return torch.load(f, map_location=map_location, weights_only=True)


__all__ = ['allowed', 'history_buffer_method', 'install', 'load', 'safe_globals']
