#!/usr/bin/env python
"""Export a trained segmentor, Cascade Mask R-CNN or HTC++ to ONNX, for ONNX Runtime (tools/infer.py,
tools/serve.py) or TensorRT.

    python tools/export_onnx.py CONFIG CHECKPOINT --out DIR [--shape H W | --dynamic] [--cfg-options k=v ...]

Writes DIR/model.onnx and DIR/export.json (classes, palette, normalisation, size policy, export
settings). Without --shape the graph is dynamic in H and W: it runs at any input size of at least one
backbone patch, window multiple or not; --shape H W exports a graph for that one input size. Inputs
outside the size policy are refused, never run. A detector's test_cfg (score threshold, NMS, counts)
is a constant of the graph: give the --cfg-options you will run with. Cascade Mask R-CNN and HTC++
(without semantic branch) export; other detectors are refused. See docs/deploy.md.
"""
import argparse
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without install
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')  # mmengine 0.10 imports it


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description='Export a segmentor or detector to DIR/model.onnx + DIR/export.json')
    parser.add_argument('config', help='mmseg or mmdet config file')
    parser.add_argument('checkpoint', help='checkpoint of that model')
    parser.add_argument('--out', required=True, help='output folder')
    size = parser.add_mutually_exclusive_group()
    size.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                      help='export for this one input size (after the test pipeline)')
    size.add_argument('--dynamic', action='store_true', help='dynamic H and W (the default)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings, key=value')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from swin_dense.deploy import ExportError, export_onnx
    from swin_dense.engine import safe_load
    from swin_dense.inference import PredictorError
    safe_load.install()  # the checkpoint is read with torch.load(weights_only=True): allow mmengine's types
    try:
        record = export_onnx(args.config, args.checkpoint, args.out, shape=args.shape, cfg_options=args.cfg_options)
    except (ExportError, PredictorError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    print(f'wrote {osp.join(args.out, "model.onnx")} ({record.task}, {len(record.classes)} classes, '
          f'{record.size_policy.describe()}) and {osp.join(args.out, "export.json")}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
