"""swin_dense: Swin Transformer V2 backbone for mmdet 3.x and mmsegmentation 1.x.

Install with ``bash tools/install.sh`` (builds mmcv 2.1.0 with ops for the installed torch first).
"""
from setuptools import find_packages, setup

setup(
    name='swin_dense',
    version='0.1.0',
    description='Swin Transformer V2 for dense prediction with OpenMMLab (mmdet, mmseg)',
    long_description=open('README.md', encoding='utf-8').read() if __import__('os').path.exists('README.md') else '',
    long_description_content_type='text/markdown',
    python_requires='>=3.9',
    packages=find_packages(include=['swin_dense', 'swin_dense.*']),
    install_requires=[
        'torch>=2.0',
        'mmengine==0.10.7',
        'mmcv>=2.0.0rc4,<2.2.0',
        'mmdet==3.3.0',
        'mmsegmentation==1.2.2',
        'ftfy',
        'regex',
        'pycocotools',
        'opencv-python',
        'safetensors',
        'tqdm',
        'fastapi',
        'uvicorn',
    ],
    extras_require={
        'tests': ['pytest', 'timm', 'transformers==4.38.2', 'mmpretrain==1.2.0'],
    },
)
