"""Structure checks of a parsed COCO annotation file (what pycocotools and mmdet do not check).

pycocotools indexes whatever top-level lists are present, and mmdet's ``CocoDataset`` silently
drops annotations whose ``image_id`` is not an image of the file; a file without ``annotations``
then trains on nothing. These checks run on the parsed file before mmdet reads it.
"""
from typing import Any, List, Mapping, Tuple

from .errors import DatasetError

#: Keys mmdet reads from every entry of ``images``.
IMAGE_KEYS = ('id', 'file_name', 'height', 'width')
_FORMAT_FIX = ('a COCO instances file is a JSON object with "images" (id, file_name, height, width), '
               '"annotations" (id, image_id, category_id, bbox, ...) and "categories" (id, name) lists; '
               're-download it or fix the converter that wrote it')


def check_coco_index(data: Mapping[str, Any], images: Mapping[Any, Any], ann_file: str,
                     require_annotations: bool = True) -> None:
    """Raise :class:`DatasetError` naming ``ann_file`` if the parsed file cannot be used as it is.

    Args:
        data: the parsed JSON (pycocotools' ``COCO.dataset``).
        images: image id -> image entry (pycocotools' ``COCO.imgs``).
        ann_file: the file's path, for the message.
        require_annotations: whether ``annotations`` must be present: True for training and
            evaluation sets; test-mode datasets may read image-info files (COCO test-dev's
            ``image_info_test-dev2017.json`` has none).
    """
    required = ('images', 'annotations', 'categories') if require_annotations else ('images', 'categories')
    missing = [key for key in required if not isinstance(data.get(key), list)]
    if missing:
        found = ', '.join(sorted(map(str, data))[:10]) or 'nothing'
        raise DatasetError(f'{ann_file}: not a COCO annotation file: no {" / ".join(missing)} list at the top '
                           f'level (found: {found})', fix=_FORMAT_FIX)
    incomplete: List[Tuple[str, str]] = [
        (f'image entry {index} ({entry.get("file_name", "no file_name")})',
         'missing ' + ', '.join(k for k in IMAGE_KEYS if k not in entry))
        for index, entry in enumerate(data['images']) if any(k not in entry for k in IMAGE_KEYS)]
    if incomplete:
        raise DatasetError(f'{ann_file}: {len(incomplete)} of {len(data["images"])} image entries lack '
                           f'{"/".join(IMAGE_KEYS)}', incomplete, fix=_FORMAT_FIX)
    annotations = data.get('annotations', [])
    orphans = [(f'annotation id {ann.get("id")}', f'image_id {ann.get("image_id")!r} is not an image of the file')
               for ann in annotations if ann.get('image_id') not in images]
    if orphans:
        raise DatasetError(f'{ann_file}: {len(orphans)} of {len(annotations)} annotations refer to images that '
                           'are not in "images" (mmdet would drop them silently)', orphans,
                           fix='remove these annotations, or add their images to "images" (and the image files)')


__all__ = ['check_coco_index', 'IMAGE_KEYS']
