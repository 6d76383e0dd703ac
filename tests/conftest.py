"""Shared pytest fixtures: the synthetic sample datasets, generated once per session in tmp dirs."""
import os
import sys
from typing import Any, Callable, Tuple

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

if os.environ.get('PYTEST_XDIST_WORKER'):
    # pytest.ini runs two workers (pytest-xdist) on the suite's 2-core machines: one intra-op thread
    # each, as the tools' subprocesses get (tool_env), instead of two threads per worker fighting.
    torch.set_num_threads(1)


#: Session fixtures that are expensive to make (a training run): every test that uses one runs on the same worker.
SHARED_RUNS = ('det_train_run',)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items):
    """With ``--dist loadgroup`` (pytest.ini), each test file runs on one worker, so its module fixtures
    (a training run, a server) are made once, and the users of a :data:`SHARED_RUNS` fixture share one."""
    for item in items:
        shared = [name for name in SHARED_RUNS if name in item.fixturenames]
        group = shared[0] if shared else os.path.relpath(str(item.path), ROOT)
        item.add_marker(pytest.mark.xdist_group(group))


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


def redraw_norms_(model: torch.nn.Module) -> torch.nn.Module:
    """Draw every norm's weights around 1 and biases around 0 (std 0.1, the global RNG), in place: the
    res-post-norms start at zero, and every block, mask and position bias should reach the output."""
    for name, p in model.named_parameters():
        if 'norm' in name:
            torch.nn.init.normal_(p, mean=1.0 if name.endswith('weight') else 0.0, std=0.1)
    return model


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


@pytest.fixture(autouse=True)
def _numerics_margins(request):
    """Hand each test's worst tests/numerics.py errors to the report, which xdist sends to the main process."""
    from numerics import WORST
    WORST.clear()
    yield
    request.node.user_properties.extend(('numerics', (check, *worst)) for check, worst in WORST.items())


def pytest_terminal_summary(terminalreporter):
    """The worst relative errors of tests/numerics.py's checks in this run, against their bounds."""
    from numerics import F64_RTOL, FP32_RTOL
    bounds = {'float64 same math': F64_RTOL, 'fp32 vs float64 reference': FP32_RTOL}
    worst = {}
    reports = [r for group in terminalreporter.stats.values() for r in group]  # the teardown reports carry them
    for report in reports:
        for key, (check, relative, what) in getattr(report, 'user_properties', None) or []:
            if key == 'numerics' and relative > worst.get(check, (-1.0, ''))[0]:
                worst[check] = (relative, what)
    for check, (relative, what) in sorted(worst.items()):
        terminalreporter.write_line(f'numerics ({torch.backends.cpu.get_cpu_capability()} kernels): worst {check} '
                                    f'error {relative:.3g} of max |reference| (bound {bounds[check]:g}) in {what}')
