"""Finding, reading and checking input images (shared by the batch tool and the HTTP server).

* :func:`collect_inputs` turns the INPUT argument of ``tools/infer.py`` (an image, a folder searched
  recursively, or a text file with one path per line) into a sorted list of :class:`InputImage`,
  each with a stable relative ``key`` that names its outputs.
* :func:`decode_image` turns encoded bytes into the BGR ``uint8`` array that mmcv's
  ``LoadImageFromFile`` would produce (same decoder, same flags), after checking that the bytes are
  an image at all, that the image is not truncated and that it is not larger than a pixel limit
  (read from the header, before anything is decoded).
* :func:`decode_base64` / :func:`is_url` check the strings the server receives.

Every problem with one image raises :class:`ImageError`, whose ``reason`` is a short slug
(``'empty'``, ``'not_an_image'``, ...) and whose message names the image.
"""
import base64
import binascii
import io
import os
import os.path as osp
import hashlib
import re
import stat
import warnings
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ..datasets.files import has_end_marker

#: File name extensions searched in folders (case-insensitive).
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
#: Largest image file :func:`read_image` reads (bytes), unless told otherwise.
MAX_FILE_BYTES = 256 << 20
#: The extensions the batch tool gives its per-image outputs (label / overlay / drawn PNGs, JSON shards).
OUTPUT_EXTENSIONS = ('.png', '.json')
_URL_RE = re.compile(r'^[a-zA-Z][a-zA-Z0-9+.-]*://')
_DATA_URI_RE = re.compile(r'^data:[^,;]*(;[^,;]*)*;base64,', re.IGNORECASE)


class InputError(ValueError):
    """The INPUT argument as a whole is unusable (missing, empty, no images)."""


class ImageError(ValueError):
    """One image cannot be used; ``reason`` is a slug, the message names the image."""

    def __init__(self, name: str, reason: str, message: str, status: int = 400):
        super().__init__(f'{name}: {message}')
        self.name = name
        self.message = message
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class InputImage:
    """One input image: its path and the relative key its outputs are named after."""
    path: str
    key: str

    @property
    def stem(self) -> str:
        return osp.splitext(self.key)[0]


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _walk_images(folder: str, exclude: Sequence[str] = ()) -> List[str]:
    excluded = {osp.realpath(e) for e in exclude}
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if osp.realpath(osp.join(root, d)) not in excluded)
        found.extend(osp.join(root, f) for f in files if is_image_name(f))
    return found


def _read_list_file(path: str) -> List[str]:
    base = osp.dirname(osp.abspath(path))
    entries = []
    try:
        with open(path, encoding='utf-8') as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError as e:
        raise InputError(f'{path} is neither an image ({", ".join(IMAGE_EXTENSIONS)}) nor a UTF-8 text file '
                         f'with one image path per line ({e})') from None
    for line in lines:
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        entries.append(line if osp.isabs(line) else osp.join(base, line))
    return entries


def collect_inputs(input_arg: str, exclude: Sequence[str] = ()) -> List[InputImage]:
    """The images INPUT names, in a stable order, with collision-free relative keys.

    Args:
        input_arg: an image file; a folder (searched recursively for IMAGE_EXTENSIONS, sorted by
            relative path); or a text file with one path per line (blank lines and ``#`` comments
            skipped, relative paths resolved against the list file's folder, order kept,
            duplicates dropped; entries that do not exist are kept, and reported as unreadable
            when they are processed).
        exclude: folders not to search (the output folder, when it lies inside INPUT).

    Raises:
        InputError: INPUT does not exist, or names no image.
    """
    if not osp.exists(input_arg):
        raise InputError(f'INPUT {input_arg!r} does not exist')
    if osp.isdir(input_arg):
        root = osp.abspath(input_arg)
        paths = sorted(_walk_images(root, exclude), key=lambda p: osp.relpath(p, root).replace(os.sep, '/'))
        if not paths:
            raise InputError(f'no images found in folder {input_arg!r} (searched recursively for '
                             f'{", ".join(IMAGE_EXTENSIONS)})')
    elif is_image_name(input_arg):
        paths = [osp.abspath(input_arg)]
        root = osp.dirname(paths[0])
    else:
        seen, paths = set(), []
        for p in _read_list_file(input_arg):
            p = osp.abspath(p)
            if p not in seen:
                seen.add(p)
                paths.append(p)
        if not paths:
            raise InputError(f'list file {input_arg!r} names no images (one path per line expected)')
        root = osp.commonpath([osp.dirname(p) for p in paths])
    keys = [osp.relpath(p, root).replace(os.sep, '/') for p in paths]
    return [InputImage(path=p, key=k) for p, k in zip(paths, keys)]


def _clashes(names: Sequence[str]) -> set:
    """Indices of names whose output files are shared with another name, or are another name's folder.

    Compared case-insensitively, so the names are also distinct on case-insensitive file systems.
    """
    files: dict = {}
    for i, n in enumerate(names):
        for ext in OUTPUT_EXTENSIONS:
            files.setdefault((n + ext).casefold(), []).append(i)
    bad = {i for owners in files.values() if len(owners) > 1 for i in owners}
    for i, n in enumerate(names):
        parts = n.casefold().split('/')
        for k in range(1, len(parts)):
            bad.update(files.get('/'.join(parts[:k]), ()))
    return bad


def output_stems(images: Sequence[InputImage]) -> List[str]:
    """The output name (without extension) of each image, distinct for any set of inputs.

    The key without its extension where that is unambiguous; otherwise the whole key (``a.jpg`` and
    ``a.png``); otherwise the key with the first 8 hex digits of its SHA-256. Ambiguous means that
    an output file (name + ``.png`` / ``.json``) would be another image's, or a folder of another
    image's outputs (``a.jpg`` and ``a.png/b.jpg``). Each image is moved up a level until nothing is
    ambiguous.

    Raises:
        InputError: names that stay ambiguous even with hashes (no real input set comes near).
    """
    forms = [(im.stem, im.key, f'{im.key}~{hashlib.sha256(im.key.encode()).hexdigest()[:8]}') for im in images]
    level = [0] * len(images)
    while True:
        names = [f[lv] for f, lv in zip(forms, level)]
        clashing = [i for i in _clashes(names) if level[i] < 2]
        if not clashing:
            break
        for i in clashing:
            level[i] += 1
    if _clashes(names):
        raise InputError('the input file names give ambiguous output names: '
                         + ', '.join(images[i].key for i in sorted(_clashes(names))[:5]) + '; rename them')
    return names


# ------------------------------------------------------------------------------------------- decoding
def _truncated(data: bytes) -> bool:
    """A JPEG or PNG cut off while written or copied, by the dataset check's rule (``has_end_marker``).

    libjpeg decodes such files with a warning, filling the missing part with grey; they are
    refused here instead.
    """
    from PIL import Image
    buffer = io.BytesIO(data)
    with Image.open(buffer) as im:
        if has_end_marker(buffer, im.format):
            return False
        try:
            im.load()  # padding after the marker: Pillow decodes it in full
        except Exception:  # noqa: BLE001  Pillow raises OSError ("image file is truncated") and others
            return True
    return False


def image_size(data: bytes, name: str) -> Tuple[int, int, str]:
    """(width, height, format) from the image header, without decoding the pixels.

    Raises:
        ImageError: empty data, or bytes that are no image format PIL knows.
    """
    if not data:
        raise ImageError(name, 'empty', 'the file is empty (0 bytes)')
    from PIL import Image, UnidentifiedImageError
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # DecompressionBombWarning: the pixel limit is ours
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
                fmt = im.format or '?'
    except Image.DecompressionBombError as e:  # over Pillow's own limit (2 x 89.5 Mpx): ours is lower or off
        pixels = re.search(r'\((\d+) pixels\)', str(e))
        raise ImageError(name, 'too_many_pixels', f'image has {pixels.group(1) if pixels else "too many"} pixels, '
                                                  f'more than Pillow decodes ({2 * Image.MAX_IMAGE_PIXELS})',
                         status=413) from None
    except UnidentifiedImageError:
        raise ImageError(name, 'not_an_image', f'not an image (unknown format; {len(data)} bytes starting '
                                               f'{data[:8]!r})') from None
    except Exception as e:  # noqa: BLE001  PIL raises assorted errors on hostile headers
        raise ImageError(name, 'not_an_image', f'not an image ({type(e).__name__}: {e})') from None
    if width <= 0 or height <= 0:
        raise ImageError(name, 'not_an_image', f'image header gives an empty size {width}x{height}')
    return width, height, fmt


def decode_image(data: bytes, name: str, max_pixels: Optional[int] = None, color_type: str = 'color',
                 imdecode_backend: str = 'cv2') -> np.ndarray:
    """Decode encoded image bytes as mmcv's ``LoadImageFromFile`` does (BGR, ``uint8``).

    Args:
        data: the encoded image (JPEG, PNG, BMP, TIFF, WebP, ...).
        name: how the image is called in error messages (a path, ``input_data[3]``).
        max_pixels: refuse images with more pixels than this (checked on the header first).
        color_type, imdecode_backend: as the config's ``LoadImageFromFile`` (``color`` / ``cv2``).

    Raises:
        ImageError: empty, not an image, truncated, too many pixels, or undecodable.
    """
    width, height, fmt = image_size(data, name)
    if max_pixels is not None and width * height > max_pixels:
        raise ImageError(name, 'too_many_pixels',
                         f'image is {width}x{height} = {width * height} pixels, more than the limit of {max_pixels}',
                         status=413)
    if _truncated(data):
        raise ImageError(name, 'truncated', f'{fmt} data is truncated (no end-of-image marker, and it does not '
                                            'decode in full)')
    import mmcv
    try:
        img = mmcv.imfrombytes(data, flag=color_type, backend=imdecode_backend)
    except Exception as e:  # noqa: BLE001  decoders raise assorted errors on corrupt data
        raise ImageError(name, 'corrupt', f'{fmt} data cannot be decoded ({type(e).__name__}: {e})') from None
    if img is None or img.size == 0:
        raise ImageError(name, 'corrupt', f'{fmt} data cannot be decoded (corrupt or unsupported)')
    if img.ndim == 2 and color_type != 'grayscale':
        img = np.stack([img] * 3, axis=-1)
    return img


_FILE_KINDS = ((stat.S_ISDIR, 'folder'), (stat.S_ISFIFO, 'FIFO (named pipe)'), (stat.S_ISCHR, 'character device'),
               (stat.S_ISBLK, 'block device'), (stat.S_ISSOCK, 'socket'))


def _not_regular(path: str, mode: int) -> ImageError:
    kind = next((k for test, k in _FILE_KINDS if test(mode)), 'special file')
    return ImageError(path, 'not_a_file', f'not a regular file but a {kind}: only regular files are read as images')


def read_file(path: str, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (symbolic links followed).

    Anything else (a FIFO, a device such as ``/dev/zero``, a folder, a socket) is refused from its
    ``stat`` before it is opened, and opened without blocking in case it was swapped in between.

    Raises:
        ImageError: missing, unreadable, not a regular file, or larger than ``max_bytes`` (413).
    """
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(path, st.st_mode)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0))
    except FileNotFoundError:
        raise ImageError(path, 'missing', 'file not found') from None
    except OSError as e:
        raise ImageError(path, 'unreadable', f'cannot be read ({e.strerror or e})') from None
    with os.fdopen(fd, 'rb') as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(path, st.st_mode)
        too_large = ImageError(path, 'too_large', f'the file has more than {max_bytes} bytes (the file size limit)',
                               status=413)
        if st.st_size > max_bytes:
            raise too_large
        try:
            data = f.read(max_bytes + 1)
        except OSError as e:
            raise ImageError(path, 'unreadable', f'cannot be read ({e.strerror or e})') from None
    if len(data) > max_bytes:
        raise too_large
    return data


def read_image(path: str, max_pixels: Optional[int] = None, color_type: str = 'color',
               imdecode_backend: str = 'cv2', max_bytes: int = MAX_FILE_BYTES) -> np.ndarray:
    """Read (:func:`read_file`) and decode one image file; :class:`ImageError` for missing, unreadable or bad files."""
    return decode_image(read_file(path, max_bytes), path, max_pixels=max_pixels, color_type=color_type,
                        imdecode_backend=imdecode_backend)


def is_url(text: str) -> bool:
    """``scheme://...`` (http, https, ftp, file, s3, ...)."""
    return bool(_URL_RE.match(text.strip()[:64]))


def decode_base64(text: str, name: str) -> bytes:
    """Bytes of a base64 string (standard or URL-safe alphabet, whitespace and a ``data:`` prefix allowed)."""
    text = text.strip()
    m = _DATA_URI_RE.match(text[:256])
    if m:
        text = text[m.end():]
    text = ''.join(text.split())
    if not text:
        raise ImageError(name, 'bad_base64', 'empty string instead of a base64 image')
    for altchars in (None, b'-_'):
        try:
            return base64.b64decode(text, altchars=altchars, validate=True)
        except (binascii.Error, ValueError):
            continue
    raise ImageError(name, 'bad_base64', 'not valid base64')


def chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


__all__ = ['IMAGE_EXTENSIONS', 'MAX_FILE_BYTES', 'OUTPUT_EXTENSIONS', 'read_file', 'InputError', 'ImageError', 'InputImage', 'collect_inputs', 'output_stems',
           'image_size', 'decode_image', 'read_image', 'is_url', 'decode_base64', 'is_image_name', 'chunks']
