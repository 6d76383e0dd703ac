"""A tiny synthetic ADE20K-format semantic segmentation sample, generated deterministically in about a second.

Layout (mmseg's standard ADE20K layout, ``reduce_zero_label=True`` semantics)::

    out_dir/
      images/training/ADE_train_00000001.jpg ...       RGB street-like scenes, 112-160 px a side
      images/validation/ADE_val_00000001.jpg ...
      annotations/training/ADE_train_00000001.png ...  8-bit label maps: 0 = unlabelled (ignored),
      annotations/validation/ADE_val_00000001.png ...  1..5 = the classes below

The five classes are the first five ADE20K classes, with their ADE20K ids, so the label maps are
valid ADE20K annotations and mmseg's ``ADE20KDataset`` reads them either with all 150 classes or
with ``metainfo=dict(classes=SAMPLE_CLASSES)`` (then ids 1..5 map to 0..4, everything else to 255):

    1 wall      beige plaster with faint horizontal bands (the band between horizon and floor)
    2 building  grey blocks with a grid of dark windows, rising from the floor into the sky
    3 sky       blue vertical gradient above the horizon
    4 floor     brown planks (dark stripes) at the bottom
    5 tree      green, strongly textured elliptic crowns drawn on top

Each image may also hold a patch of random-colour clutter labelled 0 (ignored), like ADE20K's
unlabelled pixels.  Colours are jittered per image and pixel noise is added, so classes are told
apart by colour *and* texture.  Sizes differ from image to image and are not all multiples of 32,
which exercises the padding paths of the backbone.
"""
import os
from typing import Tuple

import numpy as np
from PIL import Image

#: Class names in label order (label value = index + 1), the first five ADE20K classes.
SAMPLE_CLASSES: Tuple[str, ...] = ('wall', 'building', 'sky', 'floor', 'tree')
#: The ADE20K palette entries of those classes.
SAMPLE_PALETTE: Tuple[Tuple[int, int, int], ...] = (
    (120, 120, 120), (180, 120, 120), (6, 230, 230), (80, 50, 50), (4, 200, 3))
#: Images per split.
NUM_IMAGES = {'training': 40, 'validation': 10}
#: (height, width) choices; not all multiples of 32 on purpose.
SIZES = ((128, 128), (128, 160), (160, 128), (112, 144))

WALL, BUILDING, SKY, FLOOR, TREE = 1, 2, 3, 4, 5


def _scene(rng: np.random.Generator, height: int, width: int) -> Tuple[np.ndarray, np.ndarray]:
    """One random scene: (H, W, 3) uint8 RGB image and (H, W) uint8 label map."""
    img = np.zeros((height, width, 3), np.float32)
    label = np.zeros((height, width), np.uint8)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    jitter = lambda: rng.uniform(0.88, 1.12, 3)  # noqa: E731  per-region colour jitter

    horizon = int(height * rng.uniform(0.3, 0.45))
    floor_top = int(height * rng.uniform(0.68, 0.8))

    # sky: vertical gradient
    t = (ys[:horizon] / max(horizon - 1, 1))[..., None]
    img[:horizon] = ((1 - t) * np.array([70, 130, 225]) + t * np.array([175, 215, 250])) * jitter()
    label[:horizon] = SKY
    # wall: beige with soft horizontal bands
    band = 10 * np.sin(ys[horizon:floor_top] * rng.uniform(0.5, 0.9))[..., None]
    img[horizon:floor_top] = np.array([205, 185, 150]) * jitter() + band
    label[horizon:floor_top] = WALL
    # floor: brown planks with dark stripes
    period = int(rng.integers(5, 8))
    stripes = ((ys[floor_top:] + xs[floor_top:] * 0.2).astype(int) % period == 0)[..., None]
    img[floor_top:] = np.array([125, 80, 40]) * jitter() * np.where(stripes, 0.55, 1.0)
    label[floor_top:] = FLOOR
    # buildings: grey blocks with window grids, standing on the floor line
    for _ in range(int(rng.integers(1, 3))):
        bw = int(width * rng.uniform(0.15, 0.35))
        x0 = int(rng.integers(0, width - bw))
        y0 = int(horizon * rng.uniform(0.1, 0.7))
        grey = np.array([105, 108, 118]) * rng.uniform(0.85, 1.15)
        block = np.broadcast_to(grey, (floor_top - y0, bw, 3)).copy()
        wy, wx = np.mgrid[0:floor_top - y0, 0:bw]
        windows = ((wy % 8) >= 3) & ((wy % 8) < 6) & ((wx % 7) >= 2) & ((wx % 7) < 5)
        block[windows] = np.array([40, 45, 60])
        img[y0:floor_top, x0:x0 + bw] = block
        label[y0:floor_top, x0:x0 + bw] = BUILDING
    # trees: textured green ellipses on top of everything else
    for _ in range(int(rng.integers(1, 3))):
        cy, cx = rng.uniform(0.25, 0.8) * height, rng.uniform(0.1, 0.9) * width
        ry, rx = rng.uniform(0.1, 0.2) * height, rng.uniform(0.08, 0.16) * width
        crown = ((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2 <= 1
        leaves = rng.uniform(0.55, 1.25, (height, width, 1))
        img[crown] = (np.array([45, 135, 40]) * jitter() * leaves)[crown]
        label[crown] = TREE
    # clutter: an unlabelled patch of random colours (label 0 = ignored)
    if rng.random() < 0.7:
        ch, cw = int(rng.integers(8, 20)), int(rng.integers(8, 20))
        cy0, cx0 = int(rng.integers(0, height - ch)), int(rng.integers(0, width - cw))
        img[cy0:cy0 + ch, cx0:cx0 + cw] = rng.uniform(0, 255, (ch, cw, 3))
        label[cy0:cy0 + ch, cx0:cx0 + cw] = 0

    img += rng.normal(0, 5, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), label


def make_ade_sample(out_dir: str, seed: int = 0) -> None:
    """Write the sample split to ``out_dir`` (the dataset root, e.g. ``data/sample/ade``).

    Deterministic for a given ``seed``: the same files (byte for byte, for one Pillow version)
    are written on every call.  Existing files of the same names are overwritten.
    """
    for split, count in NUM_IMAGES.items():
        prefix = 'ADE_train' if split == 'training' else 'ADE_val'
        img_dir = os.path.join(out_dir, 'images', split)
        ann_dir = os.path.join(out_dir, 'annotations', split)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        for i in range(count):
            rng = np.random.default_rng([seed, 0 if split == 'training' else 1, i])
            height, width = SIZES[int(rng.integers(len(SIZES)))]
            img, label = _scene(rng, height, width)
            name = f'{prefix}_{i + 1:08d}'
            Image.fromarray(img).save(os.path.join(img_dir, name + '.jpg'), quality=92)
            Image.fromarray(label).save(os.path.join(ann_dir, name + '.png'))
