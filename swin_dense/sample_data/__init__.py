"""Deterministic generators of the bundled sample datasets (COCO instance segmentation, ADE20K-style semantic segmentation)."""
