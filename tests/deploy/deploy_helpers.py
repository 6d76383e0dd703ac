"""Shared by tests/deploy: random sample checkpoints whose attention reaches the output."""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'inference'))
from inference_helpers import random_checkpoint  # noqa: E402


def normed_checkpoint(task: str, folder: str) -> str:
    """The random sample checkpoint of ``task`` ('det' or 'seg') with its backbone's LayerNorm weights
    drawn around 1: at initialisation the res-post-norms are zero, and the attention (masks, position
    bias) would then not reach the output at all."""
    ckpt = torch.load(random_checkpoint(task, folder), weights_only=False)
    gen = torch.Generator().manual_seed(0)
    for key, value in ckpt['state_dict'].items():
        if key.startswith('backbone.') and 'norm' in key and key.endswith('weight'):
            ckpt['state_dict'][key] = 1 + 0.5 * torch.randn(value.shape, generator=gen)
    path = os.path.join(folder, f'{task}_normed.pth')
    torch.save(ckpt, path)
    return path
