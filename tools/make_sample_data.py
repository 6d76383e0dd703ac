#!/usr/bin/env python
"""Generate the bundled synthetic sample datasets (deterministic: the same seed gives the same files).

    python tools/make_sample_data.py [--out data/sample] [--task coco|ade|all] [--seed 0]

writes ``OUT/coco`` (COCO layout: train2017/, val2017/, annotations/instances_{train,val}2017.json)
and/or ``OUT/ade`` (ADE20K layout: images/{training,validation}/*.jpg,
annotations/{training,validation}/*.png).
"""
import argparse
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without install


def parse_args():
    parser = argparse.ArgumentParser(description='Generate the synthetic sample datasets')
    parser.add_argument('--out', default='data/sample', help='output root (default: data/sample)')
    parser.add_argument('--task', choices=['coco', 'ade', 'all'], default='all', help='which dataset(s)')
    parser.add_argument('--seed', type=int, default=0, help='random seed (default: 0)')
    return parser.parse_args()


def main():
    args = parse_args()
    if args.task in ('coco', 'all'):
        from swin_dense.sample_data.coco import make_coco_sample
        t0 = time.time()
        out = osp.join(args.out, 'coco')
        splits = make_coco_sample(out, seed=args.seed)
        counts = ', '.join(f"{k}: {len(v['images'])} images / {len(v['annotations'])} instances"
                           for k, v in splits.items())
        print(f'COCO sample -> {out} ({counts}; {time.time() - t0:.1f}s)')
    if args.task in ('ade', 'all'):
        from swin_dense.sample_data.ade import make_ade_sample
        t0 = time.time()
        out = osp.join(args.out, 'ade')
        make_ade_sample(out, seed=args.seed)
        print(f'ADE20K-style sample -> {out} ({time.time() - t0:.1f}s)')


if __name__ == '__main__':
    main()
