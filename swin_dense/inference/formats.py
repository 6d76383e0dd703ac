"""Result formats: instances and COCO results JSON (detection), label maps and PNGs (segmentation).

Detection, per image (the batch tool's shards and the server's answer)::

    {"label": 2, "score": 0.93, "box": [x1, y1, x2, y2], "mask": {"size": [h, w], "counts": "..."}}

``box`` in pixels of the original image (corners, as mmdet predicts them); ``mask`` is the instance
mask as compressed COCO RLE with ``counts`` as str (pycocotools' ``frPyObjects`` / ``decode`` take it).
The COCO results file of the batch tool holds, per instance, ``image_id``, ``category_id``,
``bbox`` ([x, y, w, h], as mmdet's ``CocoMetric`` writes it), ``score`` and ``segmentation``.

Segmentation: one label map per image, the class index (into the model's class list) per pixel,
saved as a single-channel PNG (8-bit, or 16-bit for more than 256 classes).
"""
import json
from typing import Any, Dict, List, Optional, Sequence

import cv2
import numpy as np

from ..engine.atomic_backend import atomic_write

#: The 80 COCO class names and their category ids in the COCO annotation files.
COCO_CATEGORY_IDS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28,
                     31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55,
                     56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84,
                     85, 86, 87, 88, 89, 90)


# ------------------------------------------------------------------------------------------ detection
def encode_masks(masks: np.ndarray) -> List[Dict[str, Any]]:
    """(N, H, W) boolean masks -> compressed COCO RLEs with ``counts`` as str."""
    from pycocotools import mask as mask_utils
    if len(masks) == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(np.transpose(masks.astype(np.uint8), (1, 2, 0))))
    out = []
    for rle in rles:
        counts = rle['counts']
        out.append({'size': [int(s) for s in rle['size']],
                    'counts': counts.decode('ascii') if isinstance(counts, bytes) else counts})
    return out


def det_instances(sample: Any, score_thr: float = 0.0) -> List[Dict[str, Any]]:
    """The predicted instances of a ``DetDataSample`` with ``score >= score_thr``, in the model's order."""
    inst = sample.pred_instances
    scores = inst.scores.detach().cpu().numpy()
    keep = np.nonzero(scores >= score_thr)[0]
    bboxes = inst.bboxes.detach().cpu().numpy()[keep]
    labels = inst.labels.detach().cpu().numpy()[keep]
    masks = None
    if 'masks' in inst:
        m = inst.masks
        m = m.detach().cpu().numpy() if hasattr(m, 'detach') else np.asarray(getattr(m, 'masks', m))
        masks = encode_masks(m[keep].astype(bool))
    out = []
    for j in range(len(keep)):
        entry = {'label': int(labels[j]), 'score': float(scores[keep[j]]), 'box': [float(v) for v in bboxes[j]]}
        if masks is not None:
            entry['mask'] = masks[j]
        out.append(entry)
    return out


def named_instances(instances: Sequence[Dict[str, Any]], classes: Sequence[str]) -> List[Dict[str, Any]]:
    """The server's form: ``label`` is the class name, ``label_id`` its index."""
    out = []
    for inst in instances:
        entry = {'label': classes[inst['label']] if 0 <= inst['label'] < len(classes) else str(inst['label']),
                 'label_id': inst['label'], 'score': inst['score'], 'box': inst['box']}
        if 'mask' in inst:
            entry['mask'] = inst['mask']
        out.append(entry)
    return out


def coco_category_ids(classes: Sequence[str], ann_categories: Optional[Sequence[Dict]] = None) -> List[int]:
    """COCO category id per class index.

    From an annotation file's categories (matched by name) when given; the official ids for the
    80 COCO classes; otherwise ``index + 1``.
    """
    if ann_categories:
        by_name = {c['name']: int(c['id']) for c in ann_categories}
        missing = [c for c in classes if c not in by_name]
        if missing:
            raise ValueError(f'classes {missing[:5]} are not among the annotation file\'s categories '
                             f'{sorted(by_name)[:10]}')
        return [by_name[c] for c in classes]
    try:
        from mmdet.datasets import CocoDataset
        if tuple(classes) == tuple(CocoDataset.METAINFO['classes']):
            return list(COCO_CATEGORY_IDS)
    except ImportError:  # pragma: no cover
        pass
    return [i + 1 for i in range(len(classes))]


def coco_results(instances: Sequence[Dict[str, Any]], image_id: int, cat_ids: Sequence[int]) -> List[Dict]:
    """COCO results entries of one image (as mmdet's CocoMetric.results2json, box and mask together)."""
    out = []
    for inst in instances:
        x1, y1, x2, y2 = inst['box']
        entry = {'image_id': image_id, 'category_id': int(cat_ids[inst['label']]),
                 'bbox': [x1, y1, x2 - x1, y2 - y1], 'score': inst['score']}
        if 'mask' in inst:
            entry['segmentation'] = inst['mask']
        out.append(entry)
    return out


# ---------------------------------------------------------------------------------------- segmentation
def seg_label_map(sample: Any) -> np.ndarray:
    """The class index map of a ``SegDataSample`` (H, W), uint8 (uint16 for more than 256 classes)."""
    data = sample.pred_sem_seg.data
    data = data.detach().cpu().numpy() if hasattr(data, 'detach') else np.asarray(data)
    label = data[0] if data.ndim == 3 else data
    dtype = np.uint8 if label.max(initial=0) < 256 else np.uint16
    return label.astype(dtype)


def encode_png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode('.png', image)
    if not ok:
        raise RuntimeError('PNG encoding failed')
    return buf.tobytes()


def decode_label_png(data: bytes) -> np.ndarray:
    """A label PNG (8 or 16 bit) back to its class index map."""
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ValueError('not a PNG')
    return arr


# ---------------------------------------------------------------------------------------- atomic writes
def atomic_write_json(path: str, obj: Any, indent: Optional[int] = None) -> None:
    atomic_write(path, json.dumps(obj, indent=indent, separators=None if indent else (',', ':')).encode('utf-8'))


__all__ = ['COCO_CATEGORY_IDS', 'encode_masks', 'det_instances', 'named_instances', 'coco_category_ids',
           'coco_results', 'seg_label_map', 'encode_png', 'decode_label_png', 'atomic_write',
           'atomic_write_json']
