#!/usr/bin/env python
"""Per-GPU memory of the SwinV2-L and SwinV2-G configs under DDP, ZeRO-1 and FSDP on 8 / 16 / 32 GPUs.

Each config's whole model is built with its parameters on the meta device (nothing allocated), its
backbone's activation peak is traced with fake tensors at small sizes and scaled to the config's
training size (swin_dense.benchmark.memory_plan says what is counted). Prints a markdown table
(docs/distributed.md, "Memory plan"):

    python tools/memory_plan.py --trace-sizes 256,384
"""
import argparse
import os
import sys
from typing import List, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from mmengine.config import Config  # noqa: E402
from mmengine.registry import MODELS  # noqa: E402

from swin_dense.benchmark.memory_plan import activation_per_image, markdown, model_state, plan_rows  # noqa: E402
from swin_dense.benchmark.meta import empty_parameters  # noqa: E402
from swin_dense.cli import setup_scope  # noqa: E402
from swin_dense.models import SwinTransformerV2  # noqa: E402

# (name, config, training size, images per GPU for 8 / 16 / 32 GPUs): COCO trains 1 image per GPU
# (batch 64 with accumulation, configs/htcpp_swinv2_l_coco.py); ADE20K splits batch 64 over the GPUs.
CONFIGS = [
    ('SwinV2-G HTC++ COCO', 'configs/htcpp_swinv2_g_coco.py', (1536, 1536), {8: 1, 16: 1, 32: 1}),
    ('SwinV2-G UPerNet ADE20K', 'configs/upernet_swinv2_g_ade20k.py', (640, 640), {8: 8, 16: 4, 32: 2}),
    ('SwinV2-L HTC++ COCO', 'configs/htcpp_swinv2_l_coco.py', (1536, 1536), {8: 1, 16: 1, 32: 1}),
    ('SwinV2-L UPerNet ADE20K', 'configs/memory/upernet_swinv2_l_ade20k_zero.py', (640, 640), {8: 8, 16: 4, 32: 2}),
]


def main(argv: Optional[Sequence[str]] = None) -> List[dict]:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--trace-sizes', default='256,384', help='square sizes the activation peak is traced at')
    p.add_argument('--only', help='substring of the model names to plan (default: all)')
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.trace_sizes.split(',')]
    rows = []
    for name, path, size, images in CONFIGS:
        if args.only and args.only not in name:
            continue
        cfg = Config.fromfile(os.path.join(ROOT, path))
        setup_scope(cfg)
        backbone_cfg = dict(cfg.model.backbone, init_cfg=None, drop_path_rate=0.0)
        backbone_cfg.pop('type')
        with empty_parameters():
            model = MODELS.build(dict(cfg.model, backbone=dict(backbone_cfg, type='SwinTransformerV2')))
            backbone = SwinTransformerV2(**backbone_cfg).train()
        state = model_state(model)
        activation, per_pixel = activation_per_image(backbone, sizes, size)
        print(f'# {name}: {state.total:,} parameters ({state.root:,} outside the blocks, largest block '
              f'{state.largest_block:,}); backbone activations per pixel at {sizes}: '
              + ', '.join(f'{v:.0f} B' for v in per_pixel.values()), flush=True)
        rows += plan_rows(name, state, activation, images)
    print(markdown(rows))
    return rows


if __name__ == '__main__':
    main()
