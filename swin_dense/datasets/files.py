"""Cheap checks of one dataset entry's files: the image and, for segmentation, its label map.

Three levels (``mode``), each including the previous one:

``'exists'``
    the file is there, is a regular file and is not empty (one ``stat``).
``'header'`` (the default of the tools)
    Pillow identifies the format and size from the header; JPEG and PNG files must end with their
    end marker (``FFD9`` / ``IEND``) within the last bytes, and a file that does not is decoded in
    full, so truncated files are caught while trailing padding after the marker is accepted.
    Sizes are compared: an image with the height and width of its annotation-file entry (after
    EXIF orientation, which mmcv applies when it loads ``color`` images), a label map with its
    image; label maps of mmseg datasets must be single-channel.
``'decode'``
    every image and label map is decoded in full with Pillow (slower; see docs/datasets.md).

What loads and what does not follows mmcv: ``LoadImageFromFile`` decodes grayscale, RGBA, palette
and 16-bit images as 3-channel 8-bit arrays, so those formats are fine here too.
"""
import os
import stat
from typing import BinaryIO, List, Mapping, Optional, Tuple

from PIL import Image, UnidentifiedImageError

#: Check levels, cheapest first.
MODES = ('exists', 'header', 'decode')
#: End-of-stream markers whose absence from the tail means "truncated, unless a full decode works".
_END_MARKERS = {'JPEG': b'\xff\xd9', 'PNG': b'IEND\xaeB`\x82'}
#: Bytes at the end of a file searched for the end marker.
_TAIL_BYTES = 1024
_EXIF_ORIENTATION = 0x0112
_TRANSPOSED = (5, 6, 7, 8)  # EXIF orientations that swap width and height

Problem = Tuple[str, str]  # (file, reason)
Size = Tuple[int, int]  # (height, width)


def _stat_problem(path: str) -> Optional[str]:
    """Why ``path`` is not a readable, non-empty regular file, or None."""
    if '://' in path:
        return 'is a URL: the check reads local files only (skip it for remote storage: --skip-data-check)'
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return 'file does not exist'
    except OSError as error:
        return f'cannot be read ({error.strerror or error})'
    if not stat.S_ISREG(info.st_mode):
        return 'is not a regular file'
    if info.st_size == 0:
        return 'file is empty (0 bytes)'
    return None


def has_end_marker(f: BinaryIO, image_format: Optional[str]) -> bool:
    """True if the format's end marker is in the file's last bytes, or the format has none to check.

    The one truncation rule of the package (datasets and inference inputs): a JPEG or PNG without
    its marker there is truncated unless Pillow decodes it in full (padding after the marker).
    """
    marker = _END_MARKERS.get(image_format or '')
    if marker is None:
        return True
    size = f.seek(0, os.SEEK_END)
    f.seek(max(0, size - _TAIL_BYTES))
    return marker in f.read()


def _open_problem(path: str, mode: str, label: bool) -> Tuple[Optional[str], Optional[Size]]:
    """(reason, None) if ``path`` cannot be used, else (None, (height, width) as it will be loaded)."""
    try:
        with open(path, 'rb') as f, Image.open(f) as img:
            width, height = img.size
            if mode == 'decode' or not has_end_marker(f, img.format):
                img.load()  # Pillow seeks to the image data itself
            bands, pixel_mode = len(img.getbands()), img.mode
            orientation = None if label else img.getexif().get(_EXIF_ORIENTATION)
    except UnidentifiedImageError:
        return 'not an image: unknown format or corrupt header (a failed download or a non-image file?)', None
    except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError, struct.error ... on bad data
        return f'cannot be decoded: {type(error).__name__}: {error} (truncated or corrupt)', None
    if label and bands != 1:
        return (f'label map has {bands} channels (mode {pixel_mode}); mmseg expects single-channel class '
                'indices (8-bit grey or palette PNG), not a colour-coded map'), None
    if orientation in _TRANSPOSED:
        height, width = width, height
    return None, (height, width)


def check_file(path: str, mode: str = 'header', label: bool = False) -> Tuple[Optional[str], Optional[Size]]:
    """Check one image (``label=False``) or segmentation label map (``label=True``).

    Returns:
        ``(reason, None)`` when the file cannot be used, else ``(None, (height, width))`` of the
        array it loads to (``(None, None)`` in mode ``'exists'``, which does not open files).
    """
    if mode not in MODES:
        raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
    reason = _stat_problem(path)
    if reason is not None or mode == 'exists':
        return reason, None
    return _open_problem(path, mode, label)


def _size_text(size: Size) -> str:
    return f'{size[1]}x{size[0]} (width x height)'


def check_entry(info: Mapping, mode: str = 'header', seg_labels: bool = False) -> List[Problem]:
    """Problems with one dataset entry (``dataset.get_data_info(i)``): ``[(file, reason)]``, [] if usable.

    Reads ``img_path`` and, when set, ``seg_map_path``; compares the image with the entry's
    ``height`` / ``width`` (COCO annotation files carry them) and with its label map.

    Args:
        info: the entry.
        mode: one of :data:`MODES`.
        seg_labels: ``seg_map_path`` is an mmseg class-index map (single channel, the image's size).
            mmdet's ``seg_map_path`` (panoptic, RGB-encoded) is checked as an image instead.
    """
    problems: List[Problem] = []
    img_path = info['img_path']
    reason, image_size = check_file(img_path, mode)
    if reason is not None:
        problems.append((img_path, reason))
    elif image_size is not None and 'height' in info and 'width' in info:
        expected = (int(info['height']), int(info['width']))
        if expected != image_size:
            problems.append((img_path, f'image is {_size_text(image_size)} but its annotation says '
                                       f'{_size_text(expected)}; boxes and masks would not match it'))
    seg_path = info.get('seg_map_path')
    if seg_path:
        reason, label_size = check_file(seg_path, mode, label=seg_labels)
        if reason is not None:
            problems.append((seg_path, reason))
        elif seg_labels and image_size is not None and label_size != image_size:
            problems.append((seg_path, f'label map is {_size_text(label_size)} but its image {img_path} is '
                                       f'{_size_text(image_size)}'))
    return problems


__all__ = ['MODES', 'check_file', 'check_entry']
