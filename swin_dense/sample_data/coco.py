"""Deterministic synthetic COCO-style instance segmentation sample.

``make_coco_sample(out_dir)`` writes, in mmdet's standard COCO layout::

    out_dir/train2017/000000000001.jpg ...
    out_dir/val2017/000000100001.jpg ...
    out_dir/annotations/instances_train2017.json
    out_dir/annotations/instances_val2017.json

Every image is a small canvas (side 128-160 px) with a smooth, noisy background and one to
four non-overlapping objects of three classes (:data:`CLASSES`): axis-aligned rectangles,
ellipses and triangles, each class drawn in its own hue family. Masks are rasterised first and
the pixels painted from the masks, so the annotations are exact: ``segmentation`` is the mask as
compressed COCO RLE, ``bbox`` its tight box (``[x, y, w, h]`` with pixel edges) and ``area`` its
pixel count. The same seed gives the same files byte for byte (given the same OpenCV JPEG
encoder).
"""
import json
import os
from typing import Dict, List, Tuple

import cv2
import numpy as np
from pycocotools import mask as mask_utils

CLASSES = ('rectangle', 'ellipse', 'triangle')
# Base colour (BGR, as OpenCV writes) per class; each object jitters around it.
_BASE_BGR = {
    'rectangle': (40, 40, 220),   # red
    'ellipse': (60, 200, 60),     # green
    'triangle': (220, 90, 30),    # blue
}
PALETTE = [(220, 40, 40), (60, 200, 60), (30, 90, 220)]  # RGB, for visualisation
TRAIN_ID_OFFSET = 1
VAL_ID_OFFSET = 100001


def _shape_mask(kind: str, h: int, w: int, box: Tuple[int, int, int, int], rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of one object inside ``box = (x0, y0, bw, bh)`` of an h x w canvas."""
    x0, y0, bw, bh = box
    yy, xx = np.mgrid[0:h, 0:w]
    # pixel centres
    px, py = xx + 0.5, yy + 0.5
    if kind == 'rectangle':
        m = (px >= x0) & (px < x0 + bw) & (py >= y0) & (py < y0 + bh)
    elif kind == 'ellipse':
        cx, cy, rx, ry = x0 + bw / 2, y0 + bh / 2, bw / 2, bh / 2
        m = ((px - cx) / rx) ** 2 + ((py - cy) / ry) ** 2 <= 1.0
    elif kind == 'triangle':
        # apex on the top edge (random position), base on the bottom edge; optionally flipped vertically
        apex = x0 + rng.uniform(0.2, 0.8) * bw
        pts = np.array([[apex, y0], [x0 + bw, y0 + bh], [x0, y0 + bh]], dtype=np.float64)
        if rng.random() < 0.5:
            pts[:, 1] = 2 * y0 + bh - pts[:, 1]
        m = np.ones((h, w), dtype=bool)
        sign = None
        for i in range(3):
            (ax, ay), (bx, by) = pts[i], pts[(i + 1) % 3]
            cross = (bx - ax) * (py - ay) - (by - ay) * (px - ax)
            if sign is None:
                (cx_, cy_) = pts[(i + 2) % 3]
                sign = np.sign((bx - ax) * (cy_ - ay) - (by - ay) * (cx_ - ax))
            m &= cross * sign >= 0
    else:
        raise ValueError(f'unknown shape {kind!r}')
    return m


def _background(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth grey-ish gradient plus mild noise, uint8 BGR."""
    base = rng.uniform(150, 215, size=3)
    gy = np.linspace(-1, 1, h)[:, None, None] * rng.uniform(-20, 20, size=3)
    gx = np.linspace(-1, 1, w)[None, :, None] * rng.uniform(-20, 20, size=3)
    img = base + gy + gx + rng.normal(0, 6, size=(h, w, 3))
    return np.clip(img, 0, 255)


def _make_image(rng: np.random.Generator, min_side: int, max_side: int, max_objects: int,
                min_obj: int, max_obj: int) -> Tuple[np.ndarray, List[Dict]]:
    h = int(rng.integers(min_side, max_side + 1))
    w = int(rng.integers(min_side, max_side + 1))
    img = _background(h, w, rng)
    occupied = np.zeros((h, w), dtype=bool)
    objects = []
    n = int(rng.integers(1, max_objects + 1))
    for _ in range(n):
        for _attempt in range(20):
            bw = int(rng.integers(min_obj, max_obj + 1))
            bh = int(np.clip(bw * rng.uniform(0.65, 1.5), min_obj, max_obj))
            if bw >= w - 2 or bh >= h - 2:
                continue
            x0 = int(rng.integers(1, w - bw - 1))
            y0 = int(rng.integers(1, h - bh - 1))
            # keep a 2-px gap between objects so every mask is a single, fully visible component
            if occupied[max(y0 - 2, 0):y0 + bh + 2, max(x0 - 2, 0):x0 + bw + 2].any():
                continue
            label = int(rng.integers(len(CLASSES)))
            mask = _shape_mask(CLASSES[label], h, w, (x0, y0, bw, bh), rng)
            if mask.sum() < 16:
                continue
            colour = np.clip(np.array(_BASE_BGR[CLASSES[label]]) + rng.uniform(-25, 25, size=3), 0, 255)
            shade = rng.normal(0, 5, size=(int(mask.sum()), 3))
            img[mask] = np.clip(colour + shade, 0, 255)
            occupied[y0:y0 + bh, x0:x0 + bw] = True
            objects.append(dict(label=label, mask=mask))
            break
    return np.round(img).astype(np.uint8), objects


def _annotation(mask: np.ndarray, ann_id: int, image_id: int, category_id: int) -> Dict:
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle['counts'] = rle['counts'].decode('ascii')
    return dict(id=ann_id, image_id=image_id, category_id=category_id, segmentation=rle,
                area=float(mask.sum()), bbox=[float(x0), float(y0), float(x1 - x0 + 1), float(y1 - y0 + 1)],
                iscrowd=0)


def _write_split(out_dir: str, split: str, num_images: int, id_offset: int, rng: np.random.Generator,
                 **image_kwargs) -> Dict:
    img_dir = os.path.join(out_dir, f'{split}2017')
    os.makedirs(img_dir, exist_ok=True)
    images, annotations = [], []
    ann_id = id_offset * 10
    for k in range(num_images):
        image_id = id_offset + k
        img, objects = _make_image(rng, **image_kwargs)
        file_name = f'{image_id:012d}.jpg'
        ok, buf = cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        assert ok
        with open(os.path.join(img_dir, file_name), 'wb') as f:
            f.write(buf.tobytes())
        images.append(dict(id=image_id, file_name=file_name, height=img.shape[0], width=img.shape[1]))
        for obj in objects:
            annotations.append(_annotation(obj['mask'], ann_id, image_id, obj['label'] + 1))
            ann_id += 1
    coco = dict(
        info=dict(description=f'swin_dense synthetic COCO-style sample ({split})', version='1.0'),
        licenses=[],
        images=images,
        annotations=annotations,
        categories=[dict(id=i + 1, name=name, supercategory='shape') for i, name in enumerate(CLASSES)])
    ann_dir = os.path.join(out_dir, 'annotations')
    os.makedirs(ann_dir, exist_ok=True)
    with open(os.path.join(ann_dir, f'instances_{split}2017.json'), 'w') as f:
        json.dump(coco, f)
    return coco


def make_coco_sample(out_dir: str, seed: int = 0, num_train: int = 240, num_val: int = 48,
                     min_side: int = 128, max_side: int = 160, max_objects: int = 4,
                     min_obj: int = 16, max_obj: int = 56) -> Dict[str, Dict]:
    """Write the synthetic COCO-style sample to ``out_dir`` (see the module docstring).

    Args:
        out_dir: dataset root (``data_root`` of the config).
        seed: random seed; the same seed gives the same data.
        num_train / num_val: images per split.
        min_side / max_side: image height and width range in pixels.
        max_objects: objects per image (1 to this).
        min_obj / max_obj: object box side range in pixels.

    Returns:
        {'train': coco_dict, 'val': coco_dict}.
    """
    if min_obj < 4 or max_obj < min_obj or max_obj >= min_side - 4:
        raise ValueError(f'object sizes {min_obj}..{max_obj} must satisfy 4 <= min <= max < min_side - 4 ({min_side})')
    kwargs = dict(min_side=min_side, max_side=max_side, max_objects=max_objects, min_obj=min_obj, max_obj=max_obj)
    # independent streams per split, so changing num_train does not change the val images
    train_rng, val_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    return dict(train=_write_split(out_dir, 'train', num_train, TRAIN_ID_OFFSET, train_rng, **kwargs),
                val=_write_split(out_dir, 'val', num_val, VAL_ID_OFFSET, val_rng, **kwargs))


__all__ = ['CLASSES', 'PALETTE', 'make_coco_sample']
