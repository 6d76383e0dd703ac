"""``hf-hub:ORG/NAME[@REVISION]`` checkpoints, through ``huggingface_hub``.

Its cache (``$HF_HOME/hub``, ``$HF_HUB_CACHE``), token (``huggingface-cli login``, ``$HF_TOKEN``),
offline mode (``HF_HUB_OFFLINE=1``) and mirrors (``$HF_ENDPOINT``) apply as to any hub download.
Only ``config.json`` and one weight file are fetched (``model.safetensors``, else
``pytorch_model.bin``), not the repository's other formats (TF, Flax); the result is the snapshot
folder, which :func:`~swin_dense.checkpoint.read.read_checkpoint` reads as a transformers or timm
model folder.
"""
import os
from typing import Optional, Tuple

from .errors import CheckpointError

#: The prefix of a hub source, as timm writes it.
HUB_PREFIX = 'hf-hub:'
# Weight files of a hub model, in order of preference (read.py reads the same two).
_WEIGHT_FILES = ('model.safetensors', 'pytorch_model.bin')


def parse_hub_source(source: str) -> Tuple[str, Optional[str]]:
    """``'hf-hub:ORG/NAME@REV'`` -> ``('ORG/NAME', 'REV')`` (revision None when not given).

    Raises:
        CheckpointError: no ``ORG/NAME`` after the prefix.
    """
    repo_id, _, revision = source[len(HUB_PREFIX):].partition('@')
    if repo_id.count('/') != 1 or not all(repo_id.split('/')):
        raise CheckpointError(f'{source!r} is no hub id: write hf-hub:ORG/NAME or hf-hub:ORG/NAME@REVISION, '
                              'e.g. hf-hub:microsoft/swinv2-tiny-patch4-window8-256')
    return repo_id, revision or None


def download_hub_model(source: str) -> str:
    """The local snapshot folder of a hub model (``config.json`` + weights), downloaded if not cached.

    Raises:
        CheckpointError: the repository, revision or weight file does not exist or is gated, or it is
            not cached and cannot be downloaded (offline: the message names the cache folder and the
            ``huggingface-cli download`` command that fills it).
    """
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)
    repo_id, revision = parse_hub_source(source)
    cache = os.path.join(constants.HF_HUB_CACHE, 'models--' + repo_id.replace('/', '--'))
    folder, absent = None, []
    try:
        for name in ('config.json', *_WEIGHT_FILES):
            try:
                path = hf_hub_download(repo_id, name, revision=revision, library_name='swin_dense')
            except LocalEntryNotFoundError:
                absent.append(name)
                continue
            except EntryNotFoundError:
                continue
            folder = os.path.dirname(path)
            if name != 'config.json':
                return folder
    except (RepositoryNotFoundError, GatedRepoError, RevisionNotFoundError) as err:
        raise CheckpointError(f'{source}: {type(err).__name__}: {str(err).splitlines()[0]}. Check the id and '
                              'revision; for a private or gated model log in first (huggingface-cli login or '
                              '$HF_TOKEN)') from None
    if absent:
        offline = ' (HF_HUB_OFFLINE is set)' if constants.HF_HUB_OFFLINE else ''
        raise CheckpointError(
            f'{source}: {", ".join(absent)} not in the Hugging Face cache {cache} and not downloadable{offline}. '
            f'On a machine with access run: huggingface-cli download {repo_id} config.json {_WEIGHT_FILES[0]}'
            f'{" --revision " + revision if revision else ""} (with HF_HOME pointing at the cache you copy here), '
            'or set HF_ENDPOINT to a mirror')
    raise CheckpointError(f'{source} has no {" or ".join(_WEIGHT_FILES)}'
                          f'{"" if folder else " and no config.json"}: it is no transformers or timm model of '
                          'Swin weights (sharded weights are not supported: SwinV2 models fit in one file)')
