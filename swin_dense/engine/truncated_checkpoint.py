"""Recognise a truncated checkpoint before ``torch.load`` does, and say which checkpoint to use instead.

``torch.save`` writes a zip archive (torch >= 1.6), whose central directory, the index of its
entries, is the last thing in the file. A file cut short (a save killed under mmengine's own
``CheckpointHook``, a full disk, an interrupted copy) has lost that directory, and ``torch.load``
fails with an error that names neither the file nor a way out; under torch 2.14, depending on where
the file ends: ``OSError: [Errno 22] Invalid argument``, ``RuntimeError: PytorchStreamReader failed
reading zip archive: failed finding central directory`` or a bare ``EOFError``.

:func:`check_complete` reads only the archive's header and central directory (:mod:`zipfile`) and
raises an error that names the file, lists the complete checkpoints next to it and gives the
``--resume`` argument for the newest of them.
:class:`~swin_dense.engine.atomic_checkpoint_hook.AtomicCheckpointHook` calls it for the file a run
is about to resume from or load. Files that are not zip archives (torch's legacy format, or not a
checkpoint at all) are left to ``torch.load``.
"""
import os
import os.path as osp
import re
import zipfile
from typing import List

#: the first bytes of a zip archive (a local file header), which ``torch.save`` writes first
ZIP_MAGIC = b'PK\x03\x04'


def is_truncated(path: str) -> bool:
    """Whether ``path`` is the beginning of a zip archive without its end: empty, or no readable central directory."""
    with open(path, 'rb') as f:
        head = f.read(len(ZIP_MAGIC))
    if not ZIP_MAGIC.startswith(head):
        return False
    try:
        with zipfile.ZipFile(path):
            return False
    except (zipfile.BadZipFile, EOFError, OSError):
        return True


def complete_checkpoints(folder: str, filename_tmpl: str) -> List[str]:
    """The checkpoints in ``folder`` named by ``filename_tmpl`` (e.g. ``'iter_{}.pth'``) that are not truncated.

    Returns paths, ordered by the step in their names, oldest first.
    """
    head, _, rest = filename_tmpl.partition('{')
    pattern = re.compile(re.escape(head) + r'(\d+)' + re.escape(rest.partition('}')[2]))
    steps = {}
    for name in os.listdir(folder):
        match = pattern.fullmatch(name)
        path = osp.join(folder, name)
        if match and osp.isfile(path) and not is_truncated(path):
            steps[path] = int(match.group(1))
    return sorted(steps, key=steps.get)


def check_complete(path: str, filename_tmpl: str, resume: bool) -> None:
    """Raise if the checkpoint file ``path``, which a run will resume from (or load), is truncated.

    Args:
        path: a local checkpoint file.
        filename_tmpl: how the run's checkpoint hook names checkpoints (``'epoch_{}.pth'``), to find
            the complete ones in the same folder.
        resume: whether the run resumes from ``path`` (``--resume``) or only loads its weights
            (``load_from``); it only changes the advice.

    Raises:
        RuntimeError: ``path`` is truncated. The message names it and the complete checkpoints
            next to it, and says which one to use.
    """
    if not is_truncated(path):
        return
    folder = osp.dirname(path) or '.'
    complete = complete_checkpoints(folder, filename_tmpl)
    problem = (f'cannot {"resume from" if resume else "load"} {path}: the file is truncated '
               f'({osp.getsize(path)} bytes, and the zip archive torch.save writes ends with an index this file '
               'lacks): a save was interrupted, the disk was full, or a copy is incomplete.')
    if not complete:
        advice = (f'No complete checkpoint named like {filename_tmpl!r} is left in {folder}: '
                  + ('start the run anew, without --resume.' if resume else 'give a complete copy of the checkpoint.'))
    else:
        advice = (f'Complete checkpoints in {folder}: {", ".join(osp.basename(p) for p in complete)}. '
                  + (f'Resume from the newest of them: --resume {complete[-1]}' if resume
                     else f'Load a complete copy of the checkpoint, or one of these, e.g. {complete[-1]}'))
    raise RuntimeError(f'{problem}\n{advice}')


__all__ = ['ZIP_MAGIC', 'check_complete', 'complete_checkpoints', 'is_truncated']
