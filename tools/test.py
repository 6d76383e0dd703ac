#!/usr/bin/env python
"""Evaluate a checkpoint with a config's test dataloader and evaluator (mmdet or mmseg scope).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl | --out DIR] [--tta]
                         [--show] [--wait-time S] [--show-dir DIR] [--metrics-out metrics.json]
                         [--cfg-options k=v ...] [--launcher none|pytorch|slurm]
                         [--data-check exists|header|decode | --skip-data-check]

The options of mmdet's and mmseg's own ``tools/test.py`` (``--tta``, ``--show``, ``--wait-time``,
``--show-dir``, ``--out``), for both tasks. Detection configs log the full COCO tables (box AP and
mask AP); segmentation configs the config's evaluator (mIoU, ...). The test set is checked first
(swin_dense.datasets; see docs/datasets.md, "Checking a dataset"). The checkpoint is read with
``torch.load(weights_only=True)`` and refused, naming the missing and unexpected weights, unless it
holds every weight of the model with its shape (``swin_dense.inference.predictor.check_state_dict``);
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
from swin_dense.cli import FSDP_STRATEGIES, checkpoint_argument, merge_cfg_options, setup_distributed, setup_scope  # noqa: E402
from swin_dense.datasets import MODES, DatasetError, validate_config  # noqa: E402
import swin_dense.models.det_tta  # noqa: E402,F401  InstanceSegTTAModel, the detection configs' tta_model
from swin_dense.inference.predictor import (CheckpointMismatchError, PredictorError,  # noqa: E402
                                            check_state_dict, read_state_dict)


def parse_args():
    parser = argparse.ArgumentParser(description='Test (and evaluate) a checkpoint')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint: a file, URL, hf-hub:ORG/NAME id or zoo name')
    parser.add_argument('--work-dir', help='the dir to save the evaluation logs')
    parser.add_argument('--out', type=str,
                        help='a .pkl file: dump the raw predictions to it (both tasks); any other path '
                             '(segmentation only, as mmseg): a directory the predicted label maps are written to as PNGs')
    parser.add_argument('--tta', action='store_true',
                        help="test-time augmentation: the config's tta_model and tta_pipeline (multi-scale + flip)")
    parser.add_argument('--show', action='store_true', help='show each drawn prediction in a window')
    parser.add_argument('--wait-time', type=float, default=2, help='seconds each --show window stays (default 2)')
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


def _enable_visualization(cfg: Config, task: str, show_dir, show: bool, wait_time: float) -> None:
    """Draw every test prediction: into ``show_dir`` and / or in a window (``show``), as mmdet's and mmseg's test.py."""
    hooks = cfg.default_hooks
    if 'visualization' not in hooks:
        raise SystemExit('--show / --show-dir need a `visualization` hook in the config\'s default_hooks')
    hooks.visualization['draw'] = True
    hooks.visualization['show'] = show
    hooks.visualization['wait_time'] = wait_time
    if task == 'det':
        if show_dir:
            hooks.visualization['test_out_dir'] = show_dir
    else:
        # mmseg's hook draws every `interval`-th image and saves under the visualizer's save_dir.
        hooks.visualization['interval'] = 1
        if show_dir:
            cfg.visualizer['save_dir'] = show_dir if osp.isabs(show_dir) else osp.join(cfg.work_dir, show_dir)


def _enable_tta(cfg: Config) -> None:
    """Test the config's ``tta_model`` around its model on its ``tta_pipeline``, as mmdet's and mmseg's ``--tta``."""
    missing = [key for key in ('tta_model', 'tta_pipeline') if key not in cfg]
    if missing:
        raise SystemExit(f'--tta needs {" and ".join(missing)} in the config (a TTA wrapper such as '
                         "dict(type='InstanceSegTTAModel', ...) or dict(type='SegTTAModel'), and a pipeline "
                         "ending in TestTimeAug); see docs/detection.md or docs/segmentation.md, 'TTA'")
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.model = dict(cfg.tta_model, module=cfg.model)


def _add_dump(cfg: Config, task: str, out: str) -> None:
    """``--out``: a .pkl dump of the predictions, or (segmentation) a directory of predicted label PNGs."""
    if not out.endswith(('.pkl', '.pickle')):
        if task == 'det':
            raise SystemExit(f'--out {out}: detection predictions are dumped to a .pkl or .pickle file')
        # mmseg's IoUMetric writes each prediction as a PNG of label ids under output_dir
        cfg.test_evaluator['output_dir'] = out
        cfg.test_evaluator['keep_results'] = True
        return
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


def _check_checkpoint(runner: Runner, checkpoint: str, config: str) -> None:
    """Refuse a checkpoint that does not hold every weight of the model, with its shape."""
    model = runner.model.module if hasattr(runner.model, 'module') else runner.model  # TTA / DDP wrappers
    try:
        state, _ = read_state_dict(checkpoint)
        unused = check_state_dict(model, state, checkpoint, config)
    except (PredictorError, CheckpointMismatchError) as error:
        raise SystemExit(f'{error}\nTest a checkpoint trained with this config (or fix --cfg-options).')
    if unused:
        print_log(f'{len(unused)} weights of {checkpoint} are not used by the model: {unused[:5]}',
                  logger='current', level=30)


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
    checkpoint = checkpoint_argument(args.checkpoint)
    cfg.load_from = checkpoint
    cfg.resume = False
    if args.show or args.show_dir:
        _enable_visualization(cfg, task, args.show_dir, args.show, args.wait_time)
    if args.tta:
        _enable_tta(cfg)
    if args.out:
        _add_dump(cfg, task, args.out)

    if not args.skip_data_check:
        try:
            validate_config(cfg, ('test',), mode=args.data_check)
        except DatasetError as error:
            raise SystemExit(f'dataset check failed: {error}\n(--skip-data-check tests without this check)')

    setup_distributed(cfg, args.launcher)
    if args.launcher == 'none' and cfg.get('strategy', {}).get('type') in FSDP_STRATEGIES:
        # FSDP checkpoints are consolidated files (swin_dense/engine/fsdp.py): one process tests them on the Runner
        cfg.pop('runner_type')
        cfg.pop('strategy')
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    _check_checkpoint(runner, checkpoint, args.config)
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
