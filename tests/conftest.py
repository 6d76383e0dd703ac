"""Shared pytest fixtures: the synthetic sample datasets, generated once per session in tmp dirs."""
import os
import sys
from typing import Any, Callable, Tuple

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


@pytest.fixture(scope='session')
def repo_root():
    """The repository root (tools/ and configs/ live there)."""
    return ROOT


@pytest.fixture(scope='session')
def coco_sample(tmp_path_factory):
    """Root of a generated COCO-style sample (train2017/, val2017/, annotations/), seed 0."""
    from swin_dense.sample_data.coco import make_coco_sample
    root = str(tmp_path_factory.mktemp('coco_sample'))
    make_coco_sample(root, seed=0)
    return root + '/'


@pytest.fixture(scope='session')
def ade_sample_root(tmp_path_factory):
    """Root of a generated ADE20K-style sample (images/, annotations/), seed 0."""
    ade = pytest.importorskip('swin_dense.sample_data.ade')
    root = str(tmp_path_factory.mktemp('ade_sample_root'))
    ade.make_ade_sample(root, seed=0)
    return root + '/'


def tool_env():
    """Environment for running tools/*.py as subprocesses: the checkout importable, quiet, one thread.

    One intra-op thread: on a shared 2-core machine two OpenMP threads per process made training
    steps 3-6x slower (threads spin-wait on each other); export OMP_NUM_THREADS to override.
    """
    env = dict(os.environ)
    env['PYTHONPATH'] = ROOT + os.pathsep + env.get('PYTHONPATH', '')
    env.setdefault('OMP_NUM_THREADS', '1')
    env.setdefault('PYTHONWARNINGS', 'ignore')
    return env


# ---------------------------------------------------------------- detection training run (shared)
DET_SAMPLE_CONFIG = os.path.join(ROOT, 'configs', 'sample', 'cascade_swinv2_t_sample.py')
# Short training of the sample config (60 iterations, warm-up shortened to 20): box AP 0.21 vs 0.00 untrained
# when measured; enough for a clear gain over the untrained model.
DET_TRAIN_EPOCHS = 1


def run_tool(args, timeout=600, cwd=ROOT):
    """Run a repository tool as a subprocess; fail the test with the output tail if it fails."""
    import subprocess
    proc = subprocess.run(args, cwd=cwd, env=tool_env(), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f'{" ".join(map(str, args))} exited with {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}'
                    f'\n--- stderr\n{proc.stderr[-6000:]}')
    return proc


@pytest.fixture(scope='session')
def det_train_run(coco_sample, tmp_path_factory):
    """tools/train.py on the COCO sample for DET_TRAIN_EPOCHS epochs; returns paths and the log text."""
    import time
    work_dir = str(tmp_path_factory.mktemp('det_train'))
    t0 = time.time()
    proc = run_tool([
        sys.executable, os.path.join(ROOT, 'tools', 'train.py'), DET_SAMPLE_CONFIG, '--work-dir', work_dir,
        '--cfg-options', f'data_root={coco_sample}', f'train_cfg.max_epochs={DET_TRAIN_EPOCHS}',
        f'train_cfg.val_interval={DET_TRAIN_EPOCHS}', f'default_hooks.checkpoint.interval={DET_TRAIN_EPOCHS}',
        'default_hooks.logger.interval=10', 'param_scheduler.0.end=20',  # 20-iteration warm-up: 1 epoch learns
    ])
    checkpoint = os.path.join(work_dir, f'epoch_{DET_TRAIN_EPOCHS}.pth')
    return dict(work_dir=work_dir, checkpoint=checkpoint, stdout=proc.stdout + proc.stderr,
                seconds=time.time() - t0, epochs=DET_TRAIN_EPOCHS, data_root=coco_sample)


def saved_bytes(fn: Callable[[], Any]) -> Tuple[Any, int]:
    """(``fn()``, bytes of the tensors autograd keeps for backward while it runs)."""
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        result = fn()
    return result, total
