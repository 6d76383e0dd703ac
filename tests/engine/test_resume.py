"""Exact resume after ``kill -9``: tools/train.py killed after a checkpoint, resumed with ``--resume``,
ends with the weights and validation metrics of an uninterrupted run (RNGStateHook, AtomicCheckpointHook).

One module fixture runs, as subprocesses on the ADE20K-format sample (tiny UPerNet + SwinV2 with
DropPath and dropout, seed 0, deterministic algorithms), ``ITERS`` iterations with a checkpoint and
a validation every ``INTERVAL`` (validation draws random numbers between a checkpoint and the next
training batch, which the hook must keep out of the training streams):

* ``full``: uninterrupted;
* ``killed``: SIGKILLed once a checkpoint of iteration >= ``INTERVAL`` is on disk, then resumed
  with ``--resume`` (no value: ``last_checkpoint`` in the work dir) to the end;
* ``no_restore``: resumed from a copy of the same checkpoint with the RNG restore switched off
  (``default_hooks.rng_state.restore=False``, plain mmengine behaviour), which must differ: it shows
  that the test can fail and that the restore is what makes the resume exact.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

pytestmark = pytest.mark.e2e

pytest.importorskip('mmseg')

from conftest import ROOT, tool_env  # noqa: E402

CONFIG = os.path.join(ROOT, 'configs', 'sample', 'upernet_swinv2_t_sample.py')
TRAIN = os.path.join(ROOT, 'tools', 'train.py')
ITERS = 30
INTERVAL = 10
TOLERANCE = 1e-6  # max |difference| over every tensor of the final state dicts
STARTUP_TIMEOUT = 300  # s for the killed run to write its first checkpoint (loaded 2-core machine)


def _start(work_dir, data_root, args=(), options=()):
    """Start tools/train.py on the sample, tiny and short; its output goes to WORK_DIR/stdout.log."""
    os.makedirs(work_dir, exist_ok=True)
    log = open(os.path.join(work_dir, 'stdout.log'), 'w')
    cmd = [sys.executable, TRAIN, CONFIG, '--work-dir', work_dir, *args, '--cfg-options', f'data_root={data_root}',
           f'train_cfg.max_iters={ITERS}', f'train_cfg.val_interval={INTERVAL}',
           f'default_hooks.checkpoint.interval={INTERVAL}', 'default_hooks.logger.interval=5',
           'train_dataloader.batch_size=2', 'model.backbone.drop_path_rate=0.2', 'randomness.seed=0',
           'randomness.deterministic=True', *options]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=tool_env(), stdout=log, stderr=subprocess.STDOUT)
    proc.log = log
    return proc


def _finish(proc, timeout=600):
    proc.wait(timeout=timeout)
    proc.log.close()
    with open(proc.log.name) as f:
        text = f.read()
    assert proc.returncode == 0, f'{proc.args}\nexited with {proc.returncode}\n{text[-5000:]}'
    return text


def _checkpoint_after_interval(work_dir):
    """The checkpoint last_checkpoint names, once it is of iteration >= INTERVAL (else None)."""
    try:
        with open(os.path.join(work_dir, 'last_checkpoint')) as f:
            path = f.read().strip()
    except FileNotFoundError:
        return None
    match = re.search(r'iter_(\d+)\.pth$', path)
    return path if match and int(match.group(1)) >= INTERVAL and os.path.isfile(path) else None


def _val_metrics(log_text):
    """The metrics of the last validation in a training log: {'aAcc': ..., 'mIoU': ..., 'mAcc': ...}."""
    lines = [line for line in log_text.splitlines() if 'Iter(val)' in line and 'mIoU' in line]
    assert lines, log_text[-3000:]
    return dict(re.findall(r'(aAcc|mIoU|mAcc): ([0-9.]+)', lines[-1]))


def _max_abs_diff(path_a, path_b):
    from swin_dense.engine.safe_load import load  # torch.load(weights_only=True) with mmengine's types allowed
    a = load(path_a)['state_dict']
    b = load(path_b)['state_dict']
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() if a[k].numel() else 0.0 for k in a)


@pytest.fixture(scope='module')
def runs(tmp_path_factory, ade_sample_root):
    root = tmp_path_factory.mktemp('resume')
    data_root = ade_sample_root.rstrip('/')
    dirs = {name: str(root / name) for name in ('full', 'killed', 'no_restore')}
    t0 = time.time()
    full = _start(dirs['full'], data_root)
    killed = _start(dirs['killed'], data_root)
    try:
        deadline = time.time() + STARTUP_TIMEOUT
        while (checkpoint := _checkpoint_after_interval(dirs['killed'])) is None:
            assert killed.poll() is None, f'the run to kill exited early with {killed.returncode}'
            assert time.time() < deadline, f'no checkpoint of iteration >= {INTERVAL} after {STARTUP_TIMEOUT} s'
            time.sleep(0.05)
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=60)
    finally:
        if killed.poll() is None:
            killed.kill()
        killed.log.close()
    killed_at = int(re.search(r'iter_(\d+)', checkpoint).group(1))
    assert killed.returncode == -signal.SIGKILL
    assert not os.path.exists(os.path.join(dirs['killed'], f'iter_{ITERS}.pth')), 'killed too late'
    os.makedirs(dirs['no_restore'])
    copy = shutil.copy(checkpoint, dirs['no_restore'])

    resumed = _start(dirs['killed'], data_root, args=['--resume'])
    no_restore = _start(dirs['no_restore'], data_root, args=['--resume', copy],
                        options=['default_hooks.rng_state.restore=False'])
    logs = {'full': _finish(full), 'killed': _finish(resumed), 'no_restore': _finish(no_restore)}
    return dict(dirs=dirs, logs=logs, killed_at=killed_at, seconds=time.time() - t0)


@pytest.fixture(scope='module')
def finals(runs):
    return {name: os.path.join(d, f'iter_{ITERS}.pth') for name, d in runs['dirs'].items()}


def test_resumed_run_matches_uninterrupted_run(runs, finals):
    log = runs['logs']['killed']
    assert f'Advance dataloader {runs["killed_at"]} steps' in log
    assert f'RNG states of iteration {runs["killed_at"]} will be restored' in log
    diff = _max_abs_diff(finals['full'], finals['killed'])
    assert diff <= TOLERANCE, f'resumed at {runs["killed_at"]}: max |diff| {diff:.3g}'
    assert _val_metrics(runs['logs']['killed']) == _val_metrics(runs['logs']['full'])


def test_without_rng_restore_the_resume_differs(runs, finals):
    """Plain mmengine resume (seed only) gives other DropPath masks: the check above can fail."""
    diff = _max_abs_diff(finals['full'], finals['no_restore'])
    assert diff > 100 * TOLERANCE, f'resumed at {runs["killed_at"]} without the restore: max |diff| only {diff:.3g}'
