#!/usr/bin/env python
"""Run a detector or segmentor on one image and save the drawn prediction.

    python tools/image_demo.py IMAGE CONFIG CHECKPOINT --out-file OUT.png [--device cpu] [--score-thr 0.3]

CHECKPOINT: a local file, an ``http(s)://`` URL (downloaded once into the cache) or ``hf-hub:ORG/NAME[@REV]``
(``swin_dense.checkpoint.sources.resolve_checkpoint``; docs/checkpoints.md, "Sources").

Detection configs (mmdet scope) draw boxes, labels and instance masks with mmdet's visualizer;
segmentation configs (mmseg scope) overlay the class map with mmseg's.
"""
import argparse
import os
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without install
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')  # mmengine 0.10 imports it

from mmengine.config import Config, DictAction  # noqa: E402

from swin_dense.cli import checkpoint_argument, merge_cfg_options, setup_scope  # noqa: E402
from swin_dense.engine import safe_load  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description='Image demo')
    parser.add_argument('img', help='image file')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file, http(s):// URL or hf-hub:ORG/NAME[@REV]')
    parser.add_argument('--out-file', required=True, help='where to save the drawn image')
    parser.add_argument('--device', default='cuda:0' if _cuda() else 'cpu', help='device, e.g. cpu or cuda:0')
    parser.add_argument('--score-thr', type=float, default=0.3, help='box score threshold (detection)')
    parser.add_argument('--opacity', type=float, default=0.5, help='mask opacity (segmentation)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings, key=value')
    return parser.parse_args()


def _cuda() -> bool:
    import torch
    return torch.cuda.is_available()


def _demo_det(cfg, args):
    import mmcv
    from mmdet.apis import inference_detector, init_detector
    from mmdet.registry import VISUALIZERS
    model = init_detector(cfg, args.checkpoint, device=args.device)
    result = inference_detector(model, args.img)
    visualizer = VISUALIZERS.build(model.cfg.visualizer)
    visualizer.dataset_meta = model.dataset_meta
    image = mmcv.imread(args.img, channel_order='rgb')
    visualizer.add_datasample('result', image, data_sample=result, draw_gt=False, show=False,
                              pred_score_thr=args.score_thr, out_file=args.out_file)
    inst = result.pred_instances
    kept = int((inst.scores >= args.score_thr).sum())
    print(f'{kept} instance(s) with score >= {args.score_thr} (of {len(inst)}); drawn to {args.out_file}')


def _demo_seg(cfg, args):
    from mmseg.apis import inference_model, init_model, show_result_pyplot
    model = init_model(cfg, args.checkpoint, device=args.device)
    result = inference_model(model, args.img)
    show_result_pyplot(model, args.img, result, opacity=args.opacity, show=False, out_file=args.out_file)
    print(f'segmentation drawn to {args.out_file}')


def main():
    args = parse_args()
    args.checkpoint = checkpoint_argument(args.checkpoint)
    safe_load.install()  # mmdet's / mmseg's init_* read the checkpoint with torch.load(weights_only=True)
    cfg = Config.fromfile(args.config)
    merge_cfg_options(cfg, args.cfg_options)
    task = setup_scope(cfg)
    out_dir = osp.dirname(osp.abspath(args.out_file))
    os.makedirs(out_dir, exist_ok=True)
    # the model is built from the config alone; pretrained backbone weights are not needed
    backbone = cfg.model.get('backbone', {})
    if isinstance(backbone.get('init_cfg'), dict):
        backbone['init_cfg'] = None
    (_demo_det if task == 'det' else _demo_seg)(cfg, args)


if __name__ == '__main__':
    main()
