"""Where a checkpoint comes from: one function turns every accepted source into a local path.

Sources, checked in this order:

1. ``http://`` / ``https://`` URLs: downloaded once into the cache (:mod:`.download`);
2. ``hf-hub:ORG/NAME[@REVISION]``: a Hugging Face hub model, through huggingface_hub (:mod:`.hub`);
3. an existing local file or folder, as it is;
4. a zoo name (:mod:`.zoo`), resolved through its URL or hub id.

The result is read like any local file (:func:`~swin_dense.checkpoint.read.read_checkpoint`: the
safe loader, so a pickled payload is refused whichever way it came).
"""
import difflib
import os

from .download import download_checkpoint
from .hub import HUB_PREFIX, download_hub_model
from .zoo import ZOO, zoo_entry

__all__ = ['resolve_checkpoint']


def resolve_checkpoint(source: str) -> str:
    """A local file or folder for ``source``: a path, an ``http(s)://`` URL, ``hf-hub:ORG/NAME[@REV]`` or a zoo name.

    Raises:
        FileNotFoundError: none of these (the message lists the forms and the closest zoo names).
        CheckpointError: a download or hub error (see :func:`.download.download_checkpoint`,
            :func:`.hub.download_hub_model`).
    """
    if source.startswith(('http://', 'https://')):
        return download_checkpoint(source)
    if source.startswith(HUB_PREFIX):
        return download_hub_model(source)
    if os.path.exists(source):
        return source
    entry = zoo_entry(source)
    if entry is not None:
        return resolve_checkpoint(entry.source)
    close = difflib.get_close_matches(source, [e.name for e in ZOO], n=3, cutoff=0.75)
    hint = f' Did you mean the zoo name {" or ".join(map(repr, close))}?' if close else ''
    raise FileNotFoundError(
        f'checkpoint {source!r} does not exist: it is no local file or folder, http(s):// URL, hf-hub:ORG/NAME id '
        f'or zoo name (docs/checkpoints.md lists them; `python tools/zoo_table.py`).{hint}')
