"""Shared by tests/benchmark: a tiny architecture and the options ``tools/benchmark.py`` would pass."""
import argparse

import torch

ARCH = dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8])
WINDOW = 4


def bench_args(**overrides) -> argparse.Namespace:
    """The parsed options of a ``tools/benchmark.py`` run (its defaults, one repeat and warm-up)."""
    args = dict(window=WINDOW, batch=1, seed=0, attn_chunk=[0] * 4, mlp_chunk=[0] * 4, device='cpu', dtype='fp32',
                repeats=1, warmup=1, no_check=False, no_memory=False, memory_only=False, verbose=False,
                modes=['forward'], profile_shapes=False)
    args.update(overrides)
    return argparse.Namespace(**args)


def tiny_state(seed: int = 0):
    """Random weights of :data:`ARCH` in swin_dense's keys (as the benchmark makes them)."""
    from swin_dense.benchmark.weights import random_state_dict
    from swin_dense.models import SwinTransformerV2
    torch.manual_seed(seed)
    template = SwinTransformerV2(arch=ARCH, window_size=WINDOW, out_indices=(0, 1, 2, 3))
    return random_state_dict(template, seed)
