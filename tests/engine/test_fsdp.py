"""FSDP through mmengine's FlexibleRunner + FSDPStrategy (configs/memory/_fsdp_.py, swin_dense.engine.fsdp).

1. The auto-wrap policy makes every ``SwinBlockV2`` an FSDP unit of its own (in-process, one rank).
2. Two CPU processes (tools/dist_train.sh, gloo) train the segmentation sample with FSDP: one step
   equals one step of a single process with both ranks' images, the checkpoint is one ordinary file
   with the full weights and optimizer state under the model's own names, and ``--resume`` from it
   continues exactly as the uninterrupted run.
"""
import os
import subprocess
import sys

import pytest
import torch

pytest.importorskip('mmseg')

from conftest import ROOT  # noqa: E402
from test_distributed import DETERMINISTIC, _diff, _env, _load, _losses, _rank_logs  # noqa: E402

SAMPLE = os.path.join(ROOT, 'configs', 'sample', 'upernet_swinv2_t_sample.py')
FSDP_BASE = os.path.join(ROOT, 'configs', 'memory', '_fsdp_.py')
TOOLS = os.path.join(ROOT, 'tools')

ITERS = 2      # the FSDP run saves after step 1 and step 2; the resumed run repeats step 2
PER_RANK = 2   # images per process; the single process takes 2 x PER_RANK

# SGD with momentum and a constant lr, in every run: a step moves the weights by -lr x (momentum
# buffer), so the weights after it measure the all-reduced gradient itself (AdamW's first step,
# lr x g / (|g| + eps), is blind to a gradient scaled by the world size), and the momentum buffer is
# optimizer state that --resume has to restore.
OPTIMIZER = "optim_wrapper = dict(optimizer=dict(_delete_=True, type='SGD', lr=0.05, momentum=0.9, weight_decay=1e-4))\n" \
            'param_scheduler = []\n'

# Tolerances. FSDP reduce-scatters (sums, then divides by 2) the gradients of two batches of 2
# images where the single process sums over one batch of 4: the same terms in another order, so
# the weights differ by fp32 rounding of the gradients (relative ~1e-7) times lr. Measured after one
# step: max |dw| 1.5e-8, ||dw|| / ||w|| 1.1e-9. The bounds sit ~70x and ~90x above that, and
# 15,000x below the step itself (the second step moves the weights by max 1.5e-2).
STEP_ATOL = 1e-6
STEP_RTOL_L2 = 1e-7
# A resumed run repeats the same operations on the same data and state: measured bit-identical.
# Resuming the same checkpoint with zeroed momentum buffers (a fresh SGD momentum) gives max |dw|
# 7.7e-3 one step later (measured): the bound tells the two apart by far.
RESUME_ATOL = 1e-7

RUN_OPTIONS = [*DETERMINISTIC, f'train_cfg.max_iters={ITERS}', 'default_hooks.checkpoint.interval=1',
               f'default_hooks.checkpoint.max_keep_ckpts={ITERS}']


def _config(tmp_path, name, *bases, extra=''):
    """A config file in ``tmp_path`` that inherits ``bases`` and trains with :data:`OPTIMIZER` (and ``extra``)."""
    path = tmp_path / f'{name}.py'
    path.write_text(f'_base_ = {list(bases)!r}\n{OPTIMIZER}{extra}')
    return str(path)


def _train(config, work_dir, data_root, gpus, *extra, iters=ITERS):
    opts = [f'data_root={data_root}', f'train_dataloader.batch_size={PER_RANK * (2 // gpus)}', *RUN_OPTIONS,
            f'train_cfg.max_iters={iters}']
    if gpus == 1:
        cmd = [sys.executable, os.path.join(TOOLS, 'train.py'), config]
    else:
        cmd = ['bash', os.path.join(TOOLS, 'dist_train.sh'), config, str(gpus)]
    cmd += ['--work-dir', str(work_dir), *extra, '--cfg-options', *opts]
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        pytest.fail(f'{" ".join(cmd)} exited with {proc.returncode}\n{log[-8000:]}')
    return dict(work_dir=str(work_dir), log=log)


def _checkpoint(run, it):
    return _load(os.path.join(run['work_dir'], f'iter_{it}.pth'))


# ----------------------------------------------------------------------------------- wrap policy
def test_every_swin_block_is_an_fsdp_unit(tmp_path):
    """One rank (gloo, world size 1): FSDP with the policy wraps each block, and the rest forms the root."""
    import torch.distributed as dist
    from mmengine.model import MMFullyShardedDataParallel
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    from swin_dense.engine import fsdp  # noqa: F401  registers the policy
    from swin_dense.layers.swin_block import SwinBlockV2
    from swin_dense.models.backbones.swinv2 import SwinTransformerV2

    backbone = SwinTransformerV2(arch=dict(embed_dims=16, depths=[1, 2], num_heads=[1, 2]), window_size=4,
                                 out_indices=(0, 1))
    backbone.init_weights()
    x = torch.randn(1, 3, 32, 32)
    expected = [o.detach() for o in backbone(x)]
    blocks = [m for m in backbone.modules() if isinstance(m, SwinBlockV2)]
    dist.init_process_group('gloo', init_method=f'file://{tmp_path}/store', rank=0, world_size=1)
    try:
        model = MMFullyShardedDataParallel(backbone, auto_wrap_policy='swin_block_auto_wrap_policy',
                                           device_id='cpu', use_orig_params=True)
        units = [m for m in model.modules() if isinstance(m, FSDP)]
        assert len(units) == len(blocks) + 1 == 4
        assert all(isinstance(unit.module, SwinBlockV2) for unit in units[1:])
        for got, want in zip(model(x), expected):
            torch.testing.assert_close(got, want, rtol=0, atol=0)  # one rank: the same modules on the same data
    finally:
        dist.destroy_process_group()


# ------------------------------------------------------------------------------ 2-process runs
@pytest.fixture(scope='module')
def configs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('configs')
    # the single process runs on FlexibleRunner too (its default SingleDeviceStrategy): it builds the
    # model later than mmengine's Runner, after other draws from the seeded RNG, so the initial
    # weights are FlexibleRunner's
    return dict(fsdp=_config(tmp, 'sample_fsdp', SAMPLE, FSDP_BASE),
                single=_config(tmp, 'sample', SAMPLE, extra="runner_type = 'FlexibleRunner'\n"))


@pytest.fixture(scope='module')
def fsdp_run(configs, ade_sample_root, tmp_path_factory):
    return _train(configs['fsdp'], tmp_path_factory.mktemp('fsdp'), ade_sample_root, 2)


@pytest.fixture(scope='module')
def single_run(configs, ade_sample_root, tmp_path_factory):
    return _train(configs['single'], tmp_path_factory.mktemp('single'), ade_sample_root, 1, iters=1)


@pytest.fixture(scope='module')
def fsdp_resumed(configs, fsdp_run, ade_sample_root, tmp_path_factory):
    checkpoint = os.path.join(fsdp_run['work_dir'], 'iter_1.pth')
    return _train(configs['fsdp'], tmp_path_factory.mktemp('fsdp_resumed'), ade_sample_root, 2, '--resume', checkpoint)


@pytest.mark.e2e
def test_one_fsdp_step_equals_one_single_process_step(fsdp_run, single_run):
    assert 'ConsolidatedFSDPStrategy' in fsdp_run['log']
    assert 'GPU number: 2' in fsdp_run['log']
    fsdp, single = _checkpoint(fsdp_run, 1)['state_dict'], _checkpoint(single_run, 1)['state_dict']
    max_abs, rel_l2 = _diff(single, fsdp)
    step, _ = _diff(_checkpoint(fsdp_run, 2)['state_dict'], fsdp)
    print(f'FSDP 2 x {PER_RANK} vs 1 x {2 * PER_RANK} images, one step: max |dw| {max_abs:.3g}, '
          f'||dw|| / ||w|| {rel_l2:.3g}; the next step moves the weights by max {step:.3g}')
    assert max_abs <= STEP_ATOL and rel_l2 <= STEP_RTOL_L2, (max_abs, rel_l2)
    assert step > 100 * STEP_ATOL  # a step is far larger than the bound
    # the ranks' mean loss of step 1 is the single process's
    ranks = _rank_logs(fsdp_run['work_dir'])
    mean = (_losses(ranks[0])[1] + _losses(ranks[1])[1]) / 2
    assert mean == pytest.approx(_losses(_rank_logs(single_run['work_dir'])[0])[1], rel=1e-6)


@pytest.mark.e2e
def test_fsdp_checkpoint_is_one_ordinary_file(fsdp_run, single_run):
    path = os.path.join(fsdp_run['work_dir'], f'iter_{ITERS}.pth')
    assert os.path.isfile(path)  # not a folder of per-rank shards
    checkpoint, single = _load(path), _checkpoint(single_run, 1)
    weights = checkpoint['state_dict']
    # the full weights under the model's own names (no FSDP prefixes), as the single process saves them
    assert {k: tuple(v.shape) for k, v in weights.items()} == {k: tuple(v.shape) for k, v in single['state_dict'].items()}
    # the full optimizer state: a momentum buffer for every parameter, keyed by its name
    state = checkpoint['optimizer']['state']
    assert set(state) == {n for g in checkpoint['optimizer']['param_groups'] for n in g['params']}
    assert all(state[n]['momentum_buffer'].shape == weights[n].shape for n in state)
    # the layer-decay constructor gave every parameter the lr scale it gets without FSDP (it runs on
    # the wrapped model, so its labels of the block parameters carry FSDP's module prefix)
    lr_scales = {g['param_name'].replace('_fsdp_wrapped_module.', ''): g['lr_scale']
                 for g in checkpoint['optimizer']['param_groups']}
    assert lr_scales == {g['param_name']: g['lr_scale'] for g in single['optimizer']['param_groups']}
    assert len(set(lr_scales.values())) > 2


@pytest.mark.e2e
def test_fsdp_checkpoint_loads_into_a_plain_model(fsdp_run, tmp_path):
    """What tools/test.py and the converters do: build the model without FSDP and load the file strictly;
    then both tools on the run's own (FSDP) config, in one process."""
    from mmengine.config import Config
    from mmengine.registry import MODELS
    from mmengine.runner import load_checkpoint

    from swin_dense.cli import setup_scope
    config = os.path.join(fsdp_run['work_dir'], 'sample_fsdp.py')  # the run's config, as dumped
    checkpoint = os.path.join(fsdp_run['work_dir'], f'iter_{ITERS}.pth')
    cfg = Config.fromfile(config)
    setup_scope(cfg)
    model = MODELS.build(cfg.model)
    load_checkpoint(model, checkpoint, strict=True)
    weights = _checkpoint(fsdp_run, ITERS)['state_dict']
    for name, value in model.state_dict().items():
        assert torch.equal(value, weights[name]), name
    logs = {}
    for tool, args in (('test.py', [config, checkpoint, '--work-dir', str(tmp_path / 'test')]),
                       ('convert_checkpoint.py', [checkpoint, str(tmp_path / 'backbone.pth')])):
        proc = subprocess.run([sys.executable, os.path.join(TOOLS, tool), *args], cwd=ROOT, env=_env(),
                              capture_output=True, text=True, timeout=300)
        logs[tool] = proc.stdout + proc.stderr
        assert proc.returncode == 0, (tool, logs[tool][-4000:])
    assert '"mIoU"' in logs['test.py']
    backbone = torch.load(tmp_path / 'backbone.pth', weights_only=True)
    backbone = backbone.get('state_dict', backbone)
    for name, value in backbone.items():
        assert torch.equal(value, weights[f'backbone.{name}']), name


@pytest.mark.e2e
def test_fsdp_resume_continues_exactly(fsdp_run, fsdp_resumed):
    assert 'resumed epoch: 0, iter: 1' in fsdp_resumed['log']
    max_abs, _ = _diff(_checkpoint(fsdp_run, ITERS)['state_dict'], _checkpoint(fsdp_resumed, ITERS)['state_dict'])
    assert max_abs <= RESUME_ATOL, max_abs
    losses = _losses(_rank_logs(fsdp_resumed['work_dir'])[0])
    assert sorted(losses) == [ITERS]
    assert losses[ITERS] == _losses(_rank_logs(fsdp_run['work_dir'])[0])[ITERS]
