#!/usr/bin/env python
"""Per-GPU memory of the SwinV2-L and SwinV2-G configs under DDP, ZeRO-1 and FSDP on 8 / 16 / 32 GPUs.

Each config's whole model is built with its parameters on the meta device (nothing allocated): its
model state per GPU is computed from the parameter counts; its backbone's activation peak is traced
with fake tensors at the config's training size and images per GPU (swin_dense.benchmark.memory_plan
says what is counted). Prints a markdown table, or writes it into a document between its
``<!-- memory-plan:begin ... -->`` and ``<!-- memory-plan:end -->`` lines:

    python tools/memory_plan.py
    python tools/memory_plan.py --write docs/distributed.md
"""
import argparse
import os
import sys
import time
from typing import List, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from mmengine.config import Config  # noqa: E402
from mmengine.registry import MODELS  # noqa: E402

from swin_dense.benchmark.memory_plan import (BEGIN_MARKER, END_MARKER, activation_peak, markdown,  # noqa: E402
                                              model_state, plan_rows)
from swin_dense.benchmark.meta import empty_parameters  # noqa: E402
from swin_dense.cli import setup_scope  # noqa: E402
from swin_dense.markdown_blocks import rewrite_block  # noqa: E402

COMMAND = 'python tools/memory_plan.py --write docs/distributed.md'
# (name, config, training size, images per GPU for 8 / 16 / 32 GPUs): COCO trains 1 image per GPU
# (batch 64 with accumulation, configs/htcpp_swinv2_l_coco.py); ADE20K splits batch 64 over the GPUs
# (configs/upernet_swinv2_l_ade20k.py).
CONFIGS = [
    ('SwinV2-G HTC++ COCO', 'configs/htcpp_swinv2_g_coco.py', (1536, 1536), {8: 1, 16: 1, 32: 1}),
    ('SwinV2-G UPerNet ADE20K', 'configs/upernet_swinv2_g_ade20k.py', (640, 640), {8: 8, 16: 4, 32: 2}),
    ('SwinV2-L HTC++ COCO', 'configs/htcpp_swinv2_l_coco.py', (1536, 1536), {8: 1, 16: 1, 32: 1}),
    ('SwinV2-L UPerNet ADE20K', 'configs/memory/upernet_swinv2_l_ade20k_zero.py', (640, 640), {8: 8, 16: 4, 32: 2}),
]


def plan(only: Optional[str] = None) -> str:
    """The markdown of the plan: one line per config (parameters, backbone settings), then the table."""
    notes, rows = [], []
    for name, path, size, images in CONFIGS:
        if only and only not in name:
            continue
        start = time.perf_counter()
        cfg = Config.fromfile(os.path.join(ROOT, path))
        setup_scope(cfg)
        backbone_cfg = dict(cfg.model.backbone, init_cfg=None, drop_path_rate=0.0)
        backbone_cfg.pop('type')
        with empty_parameters():
            model = MODELS.build(dict(cfg.model, backbone=dict(backbone_cfg, type='SwinTransformerV2')))
        state = model_state(model)
        activations = {n: activation_peak(backbone_cfg, size, n) for n in sorted(set(images.values()))}
        settings = {k: backbone_cfg.get(k, 0) for k in ('window_size', 'with_cp', 'attn_chunk_size', 'mlp_chunk_size')}
        notes.append(f'- {name} (`{path}`, {size[0]}x{size[1]}): {state.total:,} parameters ({state.root:,} outside '
                     f'the SwinV2 blocks, largest block {state.largest_block:,}); backbone '
                     + ', '.join(f'{k}={v}' for k, v in settings.items()))
        print(f'# {notes[-1][2:]} ({time.perf_counter() - start:.0f} s)', file=sys.stderr, flush=True)
        rows += plan_rows(name, state, images, activations)
    return '\n'.join(notes) + '\n\n' + markdown(rows) + f'\n\nMade by `{COMMAND}`.'


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Print the plan, or write it into the document given with ``--write``; 1 with a message when it has no markers."""
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--only', help='substring of the model names to plan (default: all)')
    p.add_argument('--write', metavar='DOC', help='markdown file whose memory-plan markers get the plan')
    args = p.parse_args(argv)
    text = plan(args.only)
    if args.write is None:
        print(text)
        return 0
    try:
        rewrite_block(args.write, BEGIN_MARKER, END_MARKER, text)
    except ValueError as err:
        print(f'error: {args.write}: {err}', file=sys.stderr)
        return 1
    print(f'wrote the memory plan into {args.write}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
