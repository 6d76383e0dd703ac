"""``http(s)://`` checkpoints: downloaded once into a cache, complete and hash-checked, or not at all.

The cache is torch hub's (``torch.hub.get_dir()/checkpoints``, moved by ``$TORCH_HOME``; the folder
mmengine's ``CheckpointLoader`` and timm fill for URLs too), or ``$SWIN_DENSE_CHECKPOINTS``. A file
is written under a temporary name and renamed only when its length is the server's
``Content-Length`` and, where its name carries one (``name-<sha256 prefix>.pth``, the torch.hub /
mmpretrain convention), its hash matches; a mismatch deletes it. A cached file with a hash in its
name is checked again at every use. ``torch.hub.download_url_to_file`` is not used: it accepts a
transfer that ends early (``http.client`` returns short reads without an error).
"""
import hashlib
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Optional

from .errors import CheckpointError

#: Environment variable that moves the cache of downloaded checkpoints.
CACHE_ENV = 'SWIN_DENSE_CHECKPOINTS'
_CHUNK = 1 << 20
#: Hash prefix in a file name, the torch.hub / mmpretrain convention: ``name-<sha256 prefix>.ext``.
HASH_IN_NAME = re.compile(r'-([0-9a-f]{6,64})\.[A-Za-z0-9]+$')


def checkpoint_cache_dir() -> str:
    """Folder of downloaded checkpoints: ``$SWIN_DENSE_CHECKPOINTS``, else ``torch.hub.get_dir()/checkpoints``."""
    if os.environ.get(CACHE_ENV):
        return os.path.expanduser(os.environ[CACHE_ENV])
    import torch.hub
    return os.path.join(torch.hub.get_dir(), 'checkpoints')


def cached_path(url: str) -> str:
    """Where ``url`` is (or will be) cached: the cache folder + the URL's file name."""
    name = os.path.basename(urllib.parse.urlparse(url).path)
    if not name:
        raise CheckpointError(f'{url!r} names no file (its path ends in "/"); give the URL of the checkpoint file')
    return os.path.join(checkpoint_cache_dir(), name)


def download_checkpoint(url: str, progress: bool = True) -> str:
    """The local path of ``url``'s file: from the cache, else downloaded into it (with a tqdm progress bar).

    Raises:
        CheckpointError: the server cannot be reached or answers with an error (offline: the message
            names the URL, the cache path and the ``wget`` command that fills it), the transfer ends
            early, or the file's SHA-256 does not start with the prefix in its name (the file is deleted).
    """
    path = cached_path(url)
    expected = _hash_prefix(path)
    if os.path.isfile(path):
        _check_hash(path, expected, f'the cached copy of {url}')
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    partial = f'{path}.{os.getpid()}.partial'
    try:
        _fetch(url, partial, path, progress)
        _check_hash(partial, expected, f'the download of {url}')
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return path


def _fetch(url: str, partial: str, path: str, progress: bool) -> None:
    """Write ``url``'s body to ``partial``; raise unless every byte the server announced arrived."""
    from tqdm import tqdm
    try:
        response = urllib.request.urlopen(url, timeout=60)  # noqa: S310  (http(s) only: sources.py dispatches)
    except urllib.error.HTTPError as err:
        raise CheckpointError(f'cannot download {url}: the server answered {err.code} {err.reason}; check the URL') \
            from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, 'reason', err)
        raise CheckpointError(
            f'cannot download {url} ({reason}) and it is not cached at {path}. If this machine is offline, '
            f'download it elsewhere and copy it there: wget -O {path} {url} (or point ${CACHE_ENV} at a folder '
            f'holding {os.path.basename(path)})') from None
    size = response.headers.get('Content-Length')
    total = int(size) if size is not None else None
    written = 0
    with response, open(partial, 'wb') as out, tqdm(total=total, unit='B', unit_scale=True, unit_divisor=1024,
                                                     desc=os.path.basename(path), disable=not progress) as bar:
        try:
            while True:
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                out.write(chunk)
                written += len(chunk)
                bar.update(len(chunk))
        except OSError as err:
            raise CheckpointError(f'the download of {url} broke off after {written} bytes ({err}); '
                                  'nothing was kept: run again to retry') from None
    if total is not None and written != total:
        raise CheckpointError(f'the download of {url} ended after {written} of {total} bytes (the connection '
                              'closed early); nothing was kept: run again to retry')


def _hash_prefix(path: str) -> Optional[str]:
    found = HASH_IN_NAME.search(os.path.basename(path))
    return found.group(1) if found else None


def _check_hash(path: str, expected: Optional[str], what: str) -> None:
    """Delete ``path`` and raise if its SHA-256 does not start with ``expected`` (no check without one)."""
    if expected is None:
        return
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(_CHUNK), b''):
            digest.update(chunk)
    if not digest.hexdigest().startswith(expected):
        os.remove(path)
        raise CheckpointError(f'{what} has SHA-256 {digest.hexdigest()[:len(expected)]}..., but its name says '
                              f'{expected}...: the file is corrupt or not the published one, and was deleted; '
                              'run again to download it anew')
