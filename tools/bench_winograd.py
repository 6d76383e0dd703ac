#!/usr/bin/env python
"""The measurements behind inference mode's choice of 3x3 convolution algorithm
(swin_dense/inference/winograd.py): the direct convolution, NNPACK's Winograd kernel and F(4x4, 3x3)
in matrix products, timed on random inputs of the shapes around its thresholds (one image of 8 x 8 to
128 x 128 pixels, batches of 7 x 7 and 14 x 14 RoI maps, 64 to 2048 channels), and F(4x4, 3x3) on the
RoI heads' batches for several numbers of tiles per step. Single images are contiguous (NCHW), RoI
batches channels-last, as inference mode runs them.

    python tools/bench_winograd.py [--repeats 3] [--threads 1] [--quick]

Prints two Markdown tables: per shape, the algorithm inference mode picks, each algorithm's time
(fastest of the repeats, speed-up over the direct convolution) and its largest error against the
float64 convolution over the largest output; and F(4x4, 3x3)'s time per tiles-per-step setting.
See docs/benchmarks.md, section 6.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without install

# (N, C_in, H, W), C_out and whether channels-last: one image of UPerNet's and the FPN's channel counts
# around MIN_PIXELS (contiguous, as those layers run), then the RoI heads' batches around MIN_TILES and
# at their sizes (1000 proposals, 100 detections), and RoI batches around MIN_CHANNELS (channels-last,
# as inference mode keeps the RoI heads)
CASES = ([((1, 256, s, s), 256, False) for s in (8, 16, 24, 28, 32, 48, 64, 128)]
         + [((1, 512, s, s), 512, False) for s in (16, 24, 28, 32, 64)]
         + [((1, 2048, s, s), 512, False) for s in (16, 24, 28, 32)]
         + [((n, 256, 7, 7), 256, True) for n in (2, 4, 8, 16, 1000)]
         + [((n, 256, 14, 14), 256, True) for n in (1, 2, 4, 100)]
         + [((n, c, s, s), c, True) for c in (64, 96, 128, 192) for n, s in ((100, 7), (20, 14))])
STEP_SHAPES = [(1000, 256, 7, 7), (100, 256, 14, 14)]
STEPS = [64, 96, 128, 192, 256, 512]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='3x3 convolution algorithms of inference mode, CPU')
    parser.add_argument('--repeats', type=int, default=3, help='timed runs per shape, after one warm-up')
    parser.add_argument('--threads', type=int, default=1, help='PyTorch threads (default 1)')
    parser.add_argument('--quick', action='store_true',
                        help='channels / 16 and batches / 10 (a check that it runs, not a measurement)')
    return parser.parse_args(argv)


def _scaled(shape, c_out: int, quick: bool):
    if not quick:
        return shape, c_out
    n, c, h, w = shape
    return (max(1, n // 10), max(1, c // 16), h, w), max(1, c_out // 16)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from swin_dense.deploy.speed import f4x4_step_sweep, winograd_sweep, winograd_table
    torch.set_num_threads(args.threads)
    cases = [_scaled(shape, c_out, args.quick) for shape, c_out, _ in CASES]
    print(f'{args.threads} thread(s), fastest of {args.repeats} runs, torch {torch.__version__}')
    print(winograd_table(winograd_sweep([s for s, _ in cases], [c for _, c in cases], [last for *_, last in CASES],
                                        args.repeats)))
    print()
    print('| F(4x4, 3x3) input (N, C, H, W) | ' + ' | '.join(f'{s} tiles per step (ms)' for s in STEPS) + ' |')
    print('|---' * (1 + len(STEPS)) + '|')
    for shape in STEP_SHAPES:
        shape = _scaled(shape, shape[1], args.quick)[0]
        times = f4x4_step_sweep(shape, STEPS, args.repeats)
        print(f'| {shape} | ' + ' | '.join(f'{times[s]:.1f}' for s in STEPS) + ' |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
