#!/usr/bin/env python
"""Batch inference of a detector or segmentor over an image, a folder or a list of images.

    python tools/infer.py CONFIG CHECKPOINT INPUT --out DIR [--batch-size N] [--device cpu|cuda]
                          [--score-thr 0.3] [--no-vis] [--ann-file instances.json] [--max-pixels 25000000]
                          [--max-file-mb 256] [--eager] [--cfg-options k=v ...]

INPUT: an image; a folder (searched recursively for jpg/jpeg/png/bmp/tif/tiff/webp); or a text file
with one image path per line (relative paths are relative to the list file).

Detection configs write DIR/results.json (COCO results: bbox and RLE segm for every prediction),
DIR/mapping.json (image ids <-> files, category ids <-> classes) and DIR/vis/*.png (predictions with
score >= --score-thr drawn). Segmentation configs write DIR/labels/*.png (class index per pixel)
and DIR/overlays/*.png. A run stopped for any reason continues where it stopped when started again
with the same command; outputs made from another file of the same name are computed again. Images
that are unreadable, no regular file, larger than the limits, or fail at any step are listed and
skipped; the run goes on. A PyTorch checkpoint runs on the CPU in inference mode (conv-BN folding,
torchvision's RoIAlign, channels-last RoI heads: the same results, faster; --eager turns it off); an
exported model.onnx runs in ONNX Runtime. See docs/inference.md.
"""
import argparse
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without install
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')  # mmengine 0.10 imports it
warnings.filterwarnings('ignore', message='To copy construct from a tensor')  # mmdet's mask head, harmless


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description='Batch inference over images, folders or list files')
    parser.add_argument('config', help='config file (mmdet or mmseg)')
    parser.add_argument('checkpoint', help='checkpoint of that model: path, URL, hf-hub:ORG/NAME or .onnx file')
    parser.add_argument('input', help='an image, a folder (searched recursively) or a text file of image paths')
    parser.add_argument('--out', required=True, help='output folder (a stopped run continues in it)')
    parser.add_argument('--batch-size', type=int, default=1,
                        help='images per forward pass (default 1; larger batches pad images to the largest, '
                             'as tools/test.py does)')
    parser.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N (default cpu)')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='drawing threshold for detections (results.json keeps every prediction)')
    parser.add_argument('--no-vis', action='store_true', help='write no pictures')
    parser.add_argument('--ann-file', help='COCO annotation file whose image and category ids results.json uses')
    parser.add_argument('--max-pixels', type=int, default=25_000_000,
                        help='skip (and list) images of more pixels, width x height (default 25000000; '
                             'docs/inference.md, "Limits", gives the memory per pixel)')
    parser.add_argument('--max-file-mb', type=float, default=256,
                        help='skip (and list) image files larger than this many MiB (default 256)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    parser.add_argument('--eager', action='store_true',
                        help='run a PyTorch checkpoint exactly as built, without inference mode (docs/inference.md)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings, key=value')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from swin_dense.engine import safe_load
    from swin_dense.inference import BatchError, ImageError, InputError, PredictorError, run_batch
    from swin_dense.cli import checkpoint_argument
    safe_load.install()  # the checkpoint is read with torch.load(weights_only=True): allow mmengine's types
    checkpoint = checkpoint_argument(args.checkpoint)
    try:
        summary = run_batch(args.config, checkpoint, args.input, args.out, batch_size=args.batch_size,
                            device=args.device, score_thr=args.score_thr, vis=not args.no_vis,
                            cfg_options=args.cfg_options, ann_file=args.ann_file, progress=not args.no_progress,
                            max_pixels=args.max_pixels, max_file_bytes=int(args.max_file_mb * (1 << 20)),
                            inference_mode=not args.eager)
    except (InputError, PredictorError, BatchError, ImageError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    if summary.interrupted:
        return 130
    return 0 if summary.done or not summary.images else 1


if __name__ == '__main__':
    sys.exit(main())
