#!/usr/bin/env python
"""Evaluate a checkpoint with a config's test dataloader and evaluator (mmdet or mmseg scope).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl] [--show-dir DIR]
                         [--metrics-out metrics.json] [--cfg-options k=v ...] [--launcher none|pytorch|slurm]
                         [--data-check exists|header|decode | --skip-data-check]

Detection configs log the full COCO tables (box AP and mask AP); segmentation configs the
config's evaluator (mIoU, ...). The test set is checked first (swin_dense.datasets; see
docs/datasets.md, "Checking a dataset"). The checkpoint is read with ``torch.load(weights_only=True)``;
``swin_dense.runtime`` (imported here) allows the types mmengine checkpoints contain
(swin_dense/engine/safe_load.py) and registers the hooks the configs name.
Distributed: tools/dist_test.sh CONFIG CHECKPOINT GPUS [...].
"""
import argparse
import json
import os
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without install
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')  # mmengine 0.10 imports it

import numpy as np  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.dist import is_main_process  # noqa: E402
from mmengine.logging import print_log  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import swin_dense.runtime  # noqa: E402,F401  hooks, optimizer wrappers, 'atomic_local', checkpoint allowlist
from swin_dense.cli import merge_cfg_options, setup_distributed, setup_scope  # noqa: E402
from swin_dense.datasets import MODES, DatasetError, validate_config  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description='Test (and evaluate) a checkpoint')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the evaluation logs')
    parser.add_argument('--out', type=str, help='dump the raw predictions to this pickle file (e.g. results.pkl)')
    parser.add_argument('--show-dir', help='save drawn predictions into this directory (under the work dir)')
    parser.add_argument('--metrics-out', type=str, help='write the metrics dict to this JSON file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value; top-level path variables propagate')
    parser.add_argument('--data-check', choices=MODES, default='header',
                        help='how the test dataset is checked before testing: file existence, '
                             'headers / truncation / sizes (default), or a full decode of every image')
    parser.add_argument('--skip-data-check', action='store_true', help='do not check the test dataset first')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def _enable_visualization(cfg: Config, task: str, show_dir: str) -> None:
    hooks = cfg.default_hooks
    if 'visualization' not in hooks:
        raise RuntimeError('--show-dir needs a `visualization` hook in default_hooks')
    hooks.visualization['draw'] = True
    if task == 'det':
        hooks.visualization['test_out_dir'] = show_dir
    else:
        # mmseg's hook draws every `interval`-th image and saves under the visualizer's save_dir.
        hooks.visualization['interval'] = 1
        cfg.visualizer['save_dir'] = show_dir if osp.isabs(show_dir) else osp.join(cfg.work_dir, show_dir)


def _add_dump(cfg: Config, task: str, out: str) -> None:
    if not out.endswith(('.pkl', '.pickle')):
        raise ValueError('--out must be a .pkl or .pickle file')
    dump = (dict(type='DumpDetResults', out_file_path=out) if task == 'det'
            else dict(type='DumpResults', out_file_path=out))
    evaluator = cfg.test_evaluator
    if isinstance(evaluator, (list, tuple)):
        cfg.test_evaluator = list(evaluator) + [dump]
    elif isinstance(evaluator, dict) and 'metrics' in evaluator:
        evaluator['metrics'] = list(evaluator['metrics']) + [dump]
    else:
        cfg.test_evaluator = [evaluator, dump]


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, 'item') and callable(value.item):  # torch scalars
        return value.item()
    return value


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    merge_cfg_options(cfg, args.cfg_options)
    task = setup_scope(cfg)

    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    cfg.resume = False
    if args.show_dir:
        _enable_visualization(cfg, task, args.show_dir)
    if args.out:
        _add_dump(cfg, task, args.out)

    if not args.skip_data_check:
        try:
            validate_config(cfg, ('test',), mode=args.data_check)
        except DatasetError as error:
            raise SystemExit(f'dataset check failed: {error}\n(--skip-data-check tests without this check)')

    setup_distributed(cfg, args.launcher)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    metrics = runner.test()
    metrics = _jsonable(metrics)
    if is_main_process():
        print_log('metrics: ' + json.dumps(metrics, indent=1), logger='current')
        if args.metrics_out:
            os.makedirs(osp.dirname(osp.abspath(args.metrics_out)), exist_ok=True)
            with open(args.metrics_out, 'w') as f:
                json.dump(metrics, f, indent=1)
            print_log(f'metrics written to {args.metrics_out}', logger='current')


if __name__ == '__main__':
    main()
