#!/usr/bin/env python
"""Whole-model CPU speed of a segmentor or detector (Cascade Mask R-CNN, HTC++): PyTorch eager (the
model as built) against PyTorch inference mode (what tools/infer.py and tools/serve.py run) and the
exported ONNX graph in ONNX Runtime. Without CHECKPOINT the model's own random initialisation is timed.

    python tools/bench_onnx.py CONFIG [CHECKPOINT] [--sizes 128x128 512x512 800x1344] [--repeats 5] [--threads 1]
                               [--profile] [--cfg-options k=v ...]

Prints a Markdown table (seconds per image, min / median of the repeats after one warm-up, speed-ups
over eager, and the largest logit difference, or for a detector the largest box difference, to eager);
with --profile two more tables: eager's share of time in convolutions, their GFLOP/s against this
thread's fp32 matrix product, and the best speed-up the same arithmetic allows; and for each Winograd
layer of inference mode (swin_dense/inference/winograd.py) on the input it got, the algorithm it ran,
the direct, NNPACK and F(4x4, 3x3) times and their errors against float64. See docs/benchmarks.md.
"""
import argparse
import os.path as osp
import sys
import tempfile
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without install
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')  # mmengine 0.10 imports it


def _size(text: str):
    h, _, w = text.partition('x')
    return int(h), int(w)


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description='PyTorch eager vs inference mode vs ONNX Runtime, whole model, CPU')
    parser.add_argument('config', help='mmseg or mmdet config file')
    parser.add_argument('checkpoint', nargs='?',
                        help='checkpoint of that model; left out: the model\'s own random initialisation (seed 0)')
    parser.add_argument('--sizes', nargs='+', type=_size, default=[(128, 128), (512, 512), (800, 1344)],
                        help='input sizes HxW (default 128x128 512x512 800x1344)')
    parser.add_argument('--repeats', type=int, default=5, help='timed runs per size, after one warm-up')
    parser.add_argument('--threads', type=int, default=1, help='threads of every runtime (default 1)')
    parser.add_argument('--profile', action='store_true',
                        help='also profile eager: time in convolutions, their GFLOP/s against an fp32 matrix '
                             'product, and the best speed-up any runtime with the same arithmetic could reach; '
                             'and each Winograd layer of inference mode: direct, NNPACK and F(4x4, 3x3) time and error')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings, key=value')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from swin_dense.deploy.speed import random_checkpoint
    from swin_dense.engine import safe_load
    safe_load.install()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint or random_checkpoint(args.config, f'{tmp}/random.pth',
                                                          cfg_options=args.cfg_options)
        return _report(args, checkpoint)


def _report(args, checkpoint: str) -> int:
    """Measure and print the tables (module docstring)."""
    import torch

    from mmengine.config import Config

    from swin_dense.cli import setup_scope
    from swin_dense.deploy.speed import bound_table, measure_detector, measure_segmentor, speed_table, winograd_table
    if setup_scope(Config.fromfile(args.config)) == 'seg':
        rows = measure_segmentor(args.config, checkpoint, args.sizes, args.repeats, args.cfg_options,
                                 args.profile)
        diff_name = 'logit'
    else:
        rows = measure_detector(args.config, checkpoint, args.sizes, args.repeats, args.cfg_options,
                                args.profile)
        diff_name = 'box (px)'
    print(f'{args.threads} thread(s), {args.repeats} timed runs per size, torch {torch.__version__}')
    print(speed_table(rows, diff_name))
    if args.profile:
        print(bound_table([row.bound for row in rows]))
        print(winograd_table([layer for row in rows for layer in row.winograd]))
    return 0


if __name__ == '__main__':
    sys.exit(main())
