"""Kept for tools that still call ``setup.py``; the metadata and extras are in pyproject.toml.

Install with ``bash tools/install.sh`` (builds mmcv 2.1.0 with ops for the installed torch first).
"""
from setuptools import setup

setup()
