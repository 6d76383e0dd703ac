"""Shared by tests/inference and tests/tools/test_infer.py / test_serve.py: randomly initialised sample
checkpoints (built once per process), sample subsets, and subprocess helpers for the tools."""
import json
import os
import shutil
import subprocess
import sys
from typing import Dict, List, Sequence

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.path.join(ROOT, 'tools')
DET_CONFIG = os.path.join(ROOT, 'configs', 'sample', 'cascade_swinv2_t_sample.py')
SEG_CONFIG = os.path.join(ROOT, 'configs', 'sample', 'upernet_swinv2_t_sample.py')
# fewer proposals and detections than the sample config: the same for every tool in a test, and
# about 3x faster on the CPU (the cascade heads run on every proposal)
DET_FAST = ['model.test_cfg.rpn.max_per_img=20', 'model.test_cfg.rcnn.max_per_img=10']

_checkpoints: Dict[str, str] = {}


def tool_env() -> Dict[str, str]:
    env = dict(os.environ)
    env['PYTHONPATH'] = ROOT + os.pathsep + env.get('PYTHONPATH', '')
    env.setdefault('OMP_NUM_THREADS', '2')
    env.setdefault('PYTHONWARNINGS', 'ignore')
    return env


def py(tool: str, *args) -> List[str]:
    return [sys.executable, os.path.join(TOOLS, tool), *map(str, args)]


def run(cmd: Sequence[str], timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(cmd), cwd=ROOT, env=tool_env(), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(f'{" ".join(map(str, cmd))} exited with {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}'
                    f'\n--- stderr\n{proc.stderr[-5000:]}')
    return proc


def random_checkpoint(task: str, folder: str) -> str:
    """A randomly initialised (seed 0) checkpoint of the det or seg sample config, with dataset_meta,
    as ``torch.save({'state_dict': ..., 'meta': {...}})``; built once per process."""
    if task in _checkpoints and os.path.isfile(_checkpoints[task]):
        return _checkpoints[task]
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from swin_dense.cli import setup_scope
    cfg = Config.fromfile(DET_CONFIG if task == 'det' else SEG_CONFIG)
    setup_scope(cfg)
    init_default_scope(cfg.default_scope)
    if task == 'det':
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        model.init_weights()
    meta = dict(dataset_meta=dict(classes=list(cfg.metainfo['classes']),
                                  palette=[list(p) for p in cfg.metainfo['palette']]))
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f'{task}_random.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': meta}, path)
    _checkpoints[task] = path
    return path


def coco_subset(coco_root: str, out: str, n: int) -> str:
    """The first n val images of a COCO sample with their annotations, as a COCO-layout root."""
    with open(os.path.join(coco_root, 'annotations', 'instances_val2017.json')) as f:
        ann = json.load(f)
    images = sorted(ann['images'], key=lambda im: im['id'])[:n]
    ids = {im['id'] for im in images}
    sub = dict(ann, images=images, annotations=[a for a in ann['annotations'] if a['image_id'] in ids])
    os.makedirs(os.path.join(out, 'val2017'), exist_ok=True)
    os.makedirs(os.path.join(out, 'annotations'), exist_ok=True)
    for im in images:
        shutil.copy(os.path.join(coco_root, 'val2017', im['file_name']), os.path.join(out, 'val2017'))
    with open(os.path.join(out, 'annotations', 'instances_val2017.json'), 'w') as f:
        json.dump(sub, f)
    return out.rstrip('/') + '/'
