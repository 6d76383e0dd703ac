"""Atomic writes for local files, and mmengine's local file backend built on them (``'atomic_local'``).

mmengine's ``LocalBackend.put`` / ``put_text`` open the final path and write into it: a process
killed during the write (``kill -9``, OOM killer, a preempted node) leaves a truncated file under the
final name. For checkpoints that is the file ``--resume`` picks up next, and loading it fails.

:func:`atomic_write` writes to a temporary file in the same directory, flushes and fsyncs it, and
renames it over the final path with :func:`os.replace`, which is atomic on POSIX and Windows for
paths on one file system. Any reader therefore sees either the old complete file or the new
complete file, never a partial one. The temporary file is named ``.<name>.<pid>-<random>.partial``:
hidden, and not ending in ``.pth``, so nothing that looks for checkpoints can take it for one; a
temporary file left by a killed writer is removed by :func:`remove_partial_files` (called by
:class:`~swin_dense.engine.atomic_checkpoint_hook.AtomicCheckpointHook` when training starts).

Importing this module (:mod:`swin_dense.runtime` does, for every config of this package) registers
:class:`AtomicLocalBackend` with mmengine as ``'atomic_local'``; select it with
``backend_args=dict(backend='atomic_local')`` wherever mmengine takes ``backend_args`` (the
checkpoint hook passes them to ``Runner.save_checkpoint``).
"""
import os
import os.path as osp
import re
import uuid
from pathlib import Path
from typing import List, Union

from mmengine.fileio import LocalBackend, register_backend

PARTIAL_SUFFIX = '.partial'
#: names :func:`atomic_write` gives its temporary files: ``.<name>.<pid>-<8 hex digits>.partial``
_PARTIAL_NAME = re.compile(r'^\..+\.\d+-[0-9a-f]{8}' + re.escape(PARTIAL_SUFFIX) + '$')


def _partial_path(path: str) -> str:
    """A unique temporary name next to ``path`` (same directory, so same file system)."""
    folder, name = osp.split(path)
    return osp.join(folder, f'.{name}.{os.getpid()}-{uuid.uuid4().hex[:8]}{PARTIAL_SUFFIX}')


def _fsync_directory(folder: str) -> None:
    """Make a rename in ``folder`` durable (POSIX; a no-op where directories cannot be opened)."""
    if not hasattr(os, 'O_DIRECTORY'):
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Union[str, Path], data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` is never seen partially written.

    Creates missing parent directories. The new file gets the permissions a plain ``open(path, 'wb')``
    would give (0o666 minus the umask). If writing fails the temporary file is removed and the
    error re-raised; ``path`` keeps its previous content.
    """
    path = osp.abspath(os.fspath(path))
    folder = osp.dirname(path)
    os.makedirs(folder, exist_ok=True)
    partial = _partial_path(path)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_BINARY', 0), 0o666)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
    except BaseException:
        if osp.exists(partial):
            os.remove(partial)
        raise
    _fsync_directory(folder)


def is_partial_name(name: str) -> bool:
    """Whether a file name is one of :func:`atomic_write`'s temporary files."""
    return bool(_PARTIAL_NAME.match(name))


def remove_partial_files(folder: Union[str, Path]) -> List[str]:
    """Delete the temporary files that writers killed inside :func:`atomic_write` left in ``folder``.

    Only names :func:`atomic_write` creates (``.<name>.<pid>-<hex8>.partial``) are touched. Call it
    when no writer is active in ``folder`` (e.g. when a run starts). Returns the removed paths.
    """
    folder = os.fspath(folder)
    if not osp.isdir(folder):
        return []
    removed = []
    for name in sorted(os.listdir(folder)):
        if is_partial_name(name):
            path = osp.join(folder, name)
            if osp.isfile(path):
                os.remove(path)
                removed.append(path)
    return removed


@register_backend('atomic_local')
class AtomicLocalBackend(LocalBackend):
    """mmengine's :class:`~mmengine.fileio.LocalBackend` whose ``put`` / ``put_text`` are atomic.

    Reading, listing, removing and joining paths are the local backend's; only the two write
    methods go through :func:`atomic_write`. Use it for a local ``out_dir`` only: for a remote one
    (``s3://...``) give that backend's ``backend_args``.
    """

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        """Write bytes to ``filepath`` atomically (temporary file, fsync, rename)."""
        atomic_write(filepath, obj)

    def put_text(self, obj: str, filepath: Union[str, Path], encoding: str = 'utf-8') -> None:
        """Write text to ``filepath`` atomically (temporary file, fsync, rename)."""
        atomic_write(filepath, obj.encode(encoding))


__all__ = ['AtomicLocalBackend', 'PARTIAL_SUFFIX', 'atomic_write', 'is_partial_name', 'remove_partial_files']
