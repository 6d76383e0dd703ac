#!/usr/bin/env python
"""Train a detector or segmentor from a config (mmdet or mmseg scope) with mmengine's Runner.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp [--amp-dtype bfloat16]]
                          [--auto-scale-lr] [--cfg-options k=v ...] [--launcher none|pytorch|slurm]
                          [--data-check exists|header|decode | --skip-data-check]

Before the Runner is built, the train and val datasets are checked (swin_dense.datasets: missing,
corrupt or mis-sized files, malformed annotation files, no annotated image); a failure names the
files and exits before any iteration. See docs/datasets.md ("Checking a dataset").

Distributed: tools/dist_train.sh CONFIG GPUS [...] (torchrun; gloo on machines without CUDA). A config
with ``runner_type='FlexibleRunner'`` (FSDP: configs/memory/_fsdp_.py) runs on mmengine's FlexibleRunner.
"""
import argparse
import os
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without install
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')  # mmengine 0.10 imports it

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.logging import print_log  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import swin_dense.runtime  # noqa: E402,F401  hooks, optimizer wrappers, 'atomic_local', checkpoint allowlist
from swin_dense.cli import FSDP_STRATEGIES, enable_amp, merge_cfg_options, setup_distributed, setup_scope  # noqa: E402
from swin_dense.datasets import MODES, DatasetError, validate_config  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description='Train a detector / segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models (default: work_dirs/<config name>)')
    parser.add_argument('--amp', action='store_true', default=False,
                        help='automatic mixed precision (AmpOptimWrapper, dynamic loss scale; needs a GPU)')
    parser.add_argument('--amp-dtype', choices=['float16', 'bfloat16'], default=None,
                        help='autocast dtype with --amp (default: the config\'s, else float16)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by the actual batch size over auto_scale_lr.base_batch_size')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CKPT; without a value, from the latest checkpoint in the work dir')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value (e.g. pretrained=ckpt.pth data_root=/data/coco/ '
                             'train_dataloader.batch_size=4); top-level path variables propagate')
    parser.add_argument('--data-check', choices=MODES, default='header',
                        help='how the train and val datasets are checked before training: file existence, '
                             'headers / truncation / sizes (default), or a full decode of every image')
    parser.add_argument('--skip-data-check', action='store_true',
                        help='do not check the datasets before training (a bad file then fails when it is loaded)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    merge_cfg_options(cfg, args.cfg_options)
    setup_scope(cfg)

    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])

    if args.amp or args.amp_dtype:
        enable_amp(cfg, args.amp_dtype)

    if args.auto_scale_lr:
        if 'auto_scale_lr' in cfg and 'enable' in cfg.auto_scale_lr and 'base_batch_size' in cfg.auto_scale_lr:
            cfg.auto_scale_lr.enable = True
        else:
            raise RuntimeError('the config has no auto_scale_lr with enable and base_batch_size')

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    optimizer = cfg.get('optim_wrapper', {}).get('optimizer', {})
    if args.launcher == 'none' and optimizer.get('type') == 'ZeroRedundancyOptimizer':
        raise SystemExit('this config shards the optimizer state with ZeroRedundancyOptimizer, which needs a '
                         'distributed run: start it with tools/dist_train.sh CONFIG GPUS (GPUS=1 works)')
    if args.launcher == 'none' and cfg.get('strategy', {}).get('type') in FSDP_STRATEGIES:
        raise SystemExit(f'this config shards the model with FSDP ({cfg.strategy.type}), which needs a distributed '
                         'run: start it with tools/dist_train.sh CONFIG GPUS (GPUS=1 works)')

    if not args.skip_data_check:
        try:
            validate_config(cfg, ('train', 'val'), mode=args.data_check)
        except DatasetError as error:
            raise SystemExit(f'dataset check failed: {error}\n(--skip-data-check trains without this check)')

    setup_distributed(cfg, args.launcher)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    runner.train()
    print_log(f'training finished; checkpoints and logs in {cfg.work_dir}', logger='current')


if __name__ == '__main__':
    main()
