"""Data-parallel training on CPU through tools/dist_train.sh (torchrun, gloo), as subprocesses of the real tools.

1. Two processes x batch b give the weights and losses of one process x batch 2b (same seed, same
   global data order), within the tolerances measured below.
2. The memory-saver settings (configs/memory/_memory_savers_.py: ZeRO-sharded AdamW, activation
   checkpointing, chunked window attention) on the segmentation sample: training matches plain DDP,
   each rank holds about half of the optimizer state, checkpoints hold the full state and
   ``--resume`` continues exactly.
3. The memory configs change only the shared memory-saver settings of their base configs.
4. dist_train.sh / dist_test.sh / slurm_train.sh build the torchrun / srun command lines they document.

The sample config (configs/sample/upernet_swinv2_t_sample.py) is made deterministic with
``--cfg-options`` only (see DETERMINISTIC); docs/distributed.md explains each setting.
"""
import glob
import math
import os
import re
import socket
import subprocess
import sys

import pytest

pytest.importorskip('mmseg')

from conftest import ROOT  # noqa: E402

TOOLS = os.path.join(ROOT, 'tools')
SAMPLE = os.path.join(ROOT, 'configs', 'sample', 'upernet_swinv2_t_sample.py')
SAMPLE_ZERO = os.path.join(ROOT, 'configs', 'sample', 'upernet_swinv2_t_sample_zero.py')
MEMORY_CONFIGS = sorted(glob.glob(os.path.join(ROOT, 'configs', 'memory', '*_zero.py')))

ITERS = 12        # training iterations of every run
SAVE_AT = 10      # a checkpoint here (and at ITERS): the ZeRO run resumes from it
PER_RANK = 2      # images per process in the 2-process runs; the 1-process run takes 2 x PER_RANK

# Tolerances. Runs that differ only in fp32 rounding drift apart through AdamW: it divides each
# gradient by its running RMS, so for weights whose gradient is near zero (here the CPB MLP biases)
# a last-bit difference can move an update by a sizeable part of the lr. Measured (fp32, CPU,
# 12 steps, lr warming up to 3e-4):
#   2 processes x 2 images vs 1 x 4 (order of the sums: one batch of 4, or two of 2 and DDP's
#     all-reduce mean): max |dw| 1.2e-7, ||dw|| / ||w|| 5.2e-8, last loss 2.4e-9 relative
#     (a variant with 4 vs 8 images, no layer decay, 10 steps: 4.3e-6, 1.1e-6, 1.1e-7);
#   sequential mode (attn_chunk_size=32 and mlp_chunk_size=32: q/k/v, attention and MLP in chunks, other matmul
#     shapes) vs none, everything else equal: max |dw| 1.9e-5, ||dw|| / ||w|| 2.4e-6.
# One real difference is far larger: per-process BatchNorm instead of GroupNorm gives max |dw|
# 1.9e-3, ||dw|| / ||w|| 3.7e-3 and a loss difference of 2.4e-4 (10 steps). The bounds sit 5x above
# the largest rounding effect and 19x (max), 370x (L2) and 240x (loss) below the BatchNorm one.
WEIGHT_ATOL = 1e-4       # max |w_a - w_b| over all weights
WEIGHT_RTOL_L2 = 1e-5    # ||w_a - w_b|| / ||w_a|| over all weights
LOSS_RTOL = 1e-6         # |mean of the ranks' losses - 1-process loss| / 1-process loss, last iteration
# ZeRO vs DDP: ZeRO performs the same AdamW arithmetic per parameter on the same all-reduced
# gradients and activation checkpointing recomputes the same ops: both measured bit-identical to
# DDP. Sequential attention changes the rounding (above), so the ZeRO run (all three savers) is
# held to the same bounds as 2 vs 1 processes.
# A resumed run repeats the same operations on the same data: measured bit-identical. Resuming the
# same checkpoint without its optimizer state (fresh AdamW moments) gives max |dw| 5.7e-4 two steps
# later (measured): the bound tells the two apart by far.
RESUME_ATOL = 1e-7

# Every run: the sample config made deterministic and batch-size independent with --cfg-options.
DETERMINISTIC = [
    f'train_cfg.max_iters={ITERS}',
    'train_cfg.val_begin=100000',  # no validation
    # no per-process randomness in the model (each rank draws its own dropout / drop-path masks)
    'model.backbone.drop_path_rate=0.0',
    'model.decode_head.dropout_ratio=0.0',
    'model.auxiliary_head.dropout_ratio=0.0',
    # GroupNorm instead of BatchNorm in the heads: BN statistics are per process (b images, not 2b),
    # and torch's SyncBatchNorm refuses CPU tensors ("SyncBatchNorm expected input tensor to be on GPU")
    'model.decode_head.norm_cfg.type=GN', 'model.decode_head.norm_cfg.num_groups=8',
    'model.auxiliary_head.norm_cfg.type=GN', 'model.auxiliary_head.norm_cfg.num_groups=8',
    # no random augmentation (each process draws from its own RNG stream): a fixed 128x128 resize,
    # so that every image has the same number of pixels (the pixel-mean loss then averages over
    # images like DDP's mean over ranks); the crop is then the whole image
    'train_dataloader.dataset.pipeline.2.scale=(128,128)',
    'train_dataloader.dataset.pipeline.2.ratio_range=(1.0,1.0)',
    'train_dataloader.dataset.pipeline.2.keep_ratio=False',
    'train_dataloader.dataset.pipeline.4.prob=0.0',  # RandomFlip
    'train_dataloader.dataset.pipeline.5.type=KeyMapper',  # PhotoMetricDistortion -> mmcv's identity
    # one global order: InfiniteSampler with a fixed seed gives rank r the items r, r + W, r + 2W, ...
    # of the same shuffled stream, so 2 ranks x b cover exactly the 2b items of one process's batch
    'train_dataloader.sampler.seed=0',
    # the COCO configs' layer-wise lr decay: ZeRO is checked with its one-group-per-parameter groups
    'optim_wrapper.constructor=SwinV2LayerDecayOptimizerConstructor',
    'optim_wrapper.paramwise_cfg.decay_rate=0.9',
    # the loss of every iteration, unsmoothed, to 8 digits; every rank writes its own log file
    'default_hooks.logger.interval=1', 'log_processor.window_size=1', 'log_processor.num_digits=8',
    'log_level=DEBUG',
    f'default_hooks.checkpoint.interval={SAVE_AT}', 'default_hooks.checkpoint.max_keep_ckpts=2',
]

LOSS_LINE = re.compile(r'Iter\(train\) \[\s*(\d+)/\d+\].*?\sloss: ([0-9.]+)')
SHARD_LINE = re.compile(
    r'ZeroOptimizerHook: rank (\d+) of (\d+) updates (\d+) of (\d+) parameters .*? holds (\d+) bytes')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''), PYTHONWARNINGS='ignore',
               CUDA_VISIBLE_DEVICES='', PORT=str(_free_port()), PYTHON=sys.executable)
    env.setdefault('OMP_NUM_THREADS', '1')
    return env


def _run(cmd, timeout=300) -> str:
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout)
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        pytest.fail(f'{" ".join(map(str, cmd))} exited with {proc.returncode}\n{log[-8000:]}')
    return log


def _train(config, work_dir, data_root, gpus, batch, *extra):
    opts = [f'data_root={data_root}', f'train_dataloader.batch_size={batch}', *DETERMINISTIC]
    if gpus == 1:
        cmd = [sys.executable, os.path.join(TOOLS, 'train.py'), config]
    else:
        cmd = ['bash', os.path.join(TOOLS, 'dist_train.sh'), config, str(gpus)]
    log = _run(cmd + ['--work-dir', str(work_dir), *extra, '--cfg-options', *opts])
    return dict(work_dir=str(work_dir), log=log)


def _rank_logs(work_dir):
    """{rank: text} of the per-rank log files (log_level=DEBUG), or {0: text} of a 1-process run."""
    logs = {}
    for path in glob.glob(os.path.join(work_dir, '*', '*.log')):
        match = re.search(r'_rank(\d+)\.log$', path)
        with open(path) as f:
            logs[int(match.group(1)) if match else 0] = f.read()
    return logs


def _losses(text):
    """{iteration: logged total loss}."""
    return {int(it): float(loss) for it, loss in LOSS_LINE.findall(text)}


def _load(path):
    import torch
    from swin_dense.engine.safe_load import load
    return load(path)  # torch.load(weights_only=True) with mmengine's checkpoint types allowed


def _weights(work_dir, it=ITERS):
    return _load(os.path.join(work_dir, f'iter_{it}.pth'))['state_dict']


def _diff(a, b):
    """(max |a - b|, ||a - b|| / ||a||) over all floating-point tensors; integer ones must be equal."""
    assert a.keys() == b.keys()
    worst, num, den = 0.0, 0.0, 0.0
    for key, x in a.items():
        y = b[key]
        if not x.is_floating_point():
            assert (x == y).all(), key
            continue
        d = (x.double() - y.double())
        worst = max(worst, d.abs().max().item())
        num += d.pow(2).sum().item()
        den += x.double().pow(2).sum().item()
    return worst, math.sqrt(num / den)


# ------------------------------------------------------------------------------------------ runs
@pytest.fixture(scope='module')
def single_run(ade_sample_root, tmp_path_factory):
    return _train(SAMPLE, tmp_path_factory.mktemp('one_process'), ade_sample_root, 1, 2 * PER_RANK)


@pytest.fixture(scope='module')
def ddp_run(ade_sample_root, tmp_path_factory):
    return _train(SAMPLE, tmp_path_factory.mktemp('two_processes'), ade_sample_root, 2, PER_RANK)


@pytest.fixture(scope='module')
def zero_run(ade_sample_root, tmp_path_factory):
    return _train(SAMPLE_ZERO, tmp_path_factory.mktemp('zero'), ade_sample_root, 2, PER_RANK)


@pytest.fixture(scope='module')
def zero_resumed(zero_run, ade_sample_root, tmp_path_factory):
    checkpoint = os.path.join(zero_run['work_dir'], f'iter_{SAVE_AT}.pth')
    return _train(SAMPLE_ZERO, tmp_path_factory.mktemp('zero_resumed'), ade_sample_root, 2, PER_RANK,
                  '--resume', checkpoint)


# ----------------------------------------------------------------------------- 2 processes vs 1
@pytest.mark.e2e
def test_two_processes_match_one_process_with_twice_the_batch(single_run, ddp_run):
    log = ddp_run['log']
    assert 'initialised torch.distributed with gloo' in log
    assert 'Distributed training: True' in log and 'GPU number: 2' in log
    max_abs, rel_l2 = _diff(_weights(single_run['work_dir']), _weights(ddp_run['work_dir']))
    print(f'2 x {PER_RANK} vs 1 x {2 * PER_RANK} images, {ITERS} iterations: max |dw| {max_abs:.3g}, '
          f'||dw|| / ||w|| {rel_l2:.3g}')
    assert max_abs <= WEIGHT_ATOL and rel_l2 <= WEIGHT_RTOL_L2, (max_abs, rel_l2)


@pytest.mark.e2e
def test_two_processes_loss_is_the_mean_of_the_ranks(single_run, ddp_run):
    """Each rank logs the loss of its own half of the batch; their mean is the 1-process loss."""
    single = _losses(_rank_logs(single_run['work_dir'])[0])
    ranks = _rank_logs(ddp_run['work_dir'])
    assert sorted(ranks) == [0, 1], sorted(ranks)
    rank_losses = [_losses(ranks[r]) for r in (0, 1)]
    assert sorted(single) == sorted(rank_losses[0]) == sorted(rank_losses[1]) == list(range(1, ITERS + 1))
    mean = (rank_losses[0][ITERS] + rank_losses[1][ITERS]) / 2
    rel = abs(mean - single[ITERS]) / single[ITERS]
    print(f'last loss: 1 process {single[ITERS]:.8f}, ranks {rank_losses[0][ITERS]:.8f} / '
          f'{rank_losses[1][ITERS]:.8f}, mean {mean:.8f}, relative difference {rel:.3g}')
    assert rel <= LOSS_RTOL, (single[ITERS], mean)
    # the ranks saw different images (else the comparison above would prove nothing)
    assert abs(rank_losses[0][ITERS] - rank_losses[1][ITERS]) > 100 * LOSS_RTOL * single[ITERS]


# ------------------------------------------------------------------------------ memory savers
@pytest.mark.e2e
def test_zero_training_matches_ddp(ddp_run, zero_run):
    log = zero_run['log']
    assert 'ZeroRedundancyOptimizer' in log and 'ZeroOptimizerHook' in log
    losses = _losses(_rank_logs(zero_run['work_dir'])[0])
    assert sorted(losses) == list(range(1, ITERS + 1)) and all(math.isfinite(v) for v in losses.values())
    max_abs, rel_l2 = _diff(_weights(ddp_run['work_dir']), _weights(zero_run['work_dir']))
    print(f'ZeRO + activation checkpointing + sequential attention vs DDP: max |dw| {max_abs:.3g}, '
          f'||dw|| / ||w|| {rel_l2:.3g}')
    assert max_abs <= WEIGHT_ATOL and rel_l2 <= WEIGHT_RTOL_L2, (max_abs, rel_l2)


def _shards(work_dir):
    """{rank: (parameters it updates, all parameters, bytes of optimizer state)} from ZeroOptimizerHook's lines."""
    shards = {}
    for rank, text in _rank_logs(work_dir).items():
        match = SHARD_LINE.search(text)
        assert match, f'no ZeroOptimizerHook shard line in the log of rank {rank}'
        r, world, local, total, state_bytes = map(int, match.groups())
        assert (r, world) == (rank, 2)
        shards[rank] = (local, total, state_bytes)
    assert sorted(shards) == [0, 1]
    return shards


@pytest.mark.e2e
def test_zero_shards_the_optimizer_state(zero_run):
    """Each rank updates, and keeps AdamW state for, about half of the parameters."""
    shards = _shards(zero_run['work_dir'])
    (local0, total, bytes0), (local1, total1, bytes1) = shards[0], shards[1]
    assert total == total1 and local0 + local1 == total
    print(f'ZeRO shards: {local0} + {local1} of {total} parameters; AdamW state {bytes0} + {bytes1} bytes '
          f'(without ZeRO every rank holds {2 * 4 * total})')
    for local, state_bytes in ((local0, bytes0), (local1, bytes1)):
        assert 0.4 * total <= local <= 0.6 * total
        assert state_bytes == 2 * 4 * local  # exp_avg + exp_avg_sq in fp32, for this rank's parameters only


@pytest.mark.e2e
def test_zero_checkpoint_holds_the_full_optimizer_state(zero_run):
    checkpoint = _load(os.path.join(zero_run['work_dir'], f'iter_{ITERS}.pth'))
    optimizer, weights = checkpoint['optimizer'], checkpoint['state_dict']
    groups = optimizer['param_groups']
    # one group per parameter with the layer-decay keys, every one kept through ZeRO
    assert all({'param_name', 'layer_id', 'lr_scale'} <= set(g) for g in groups)
    assert len({g['lr_scale'] for g in groups}) > 2
    names = [g['param_name'] for g in groups]
    assert len(set(names)) == len(names) and set(names) <= set(weights)
    # the consolidated state: AdamW moments for every parameter of both shards
    assert len(optimizer['state']) == len(groups)
    assert all(set(s) >= {'exp_avg', 'exp_avg_sq'} for s in optimizer['state'].values())
    assert sum(weights[n].numel() for n in names) == _shards(zero_run['work_dir'])[0][1]


@pytest.mark.e2e
def test_zero_resume_continues_exactly(zero_run, zero_resumed):
    log = zero_resumed['log']
    assert f'resumed epoch: 0, iter: {SAVE_AT}' in log
    losses = _losses(_rank_logs(zero_resumed['work_dir'])[0])
    assert sorted(losses) == list(range(SAVE_AT + 1, ITERS + 1))
    assert losses[ITERS] == pytest.approx(_losses(_rank_logs(zero_run['work_dir'])[0])[ITERS], rel=1e-6)
    max_abs, _ = _diff(_weights(zero_run['work_dir']), _weights(zero_resumed['work_dir']))
    assert max_abs <= RESUME_ATOL, max_abs  # the AdamW moments were restored


# ------------------------------------------------------------------------------------- configs
def _first_base(path):
    """The model config a memory config inherits (the first entry of its ``_base_``), as a path."""
    import ast
    with open(path) as f:
        for node in ast.parse(f.read()).body:
            if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', None) == '_base_':
                return os.path.join(os.path.dirname(path), ast.literal_eval(node.value)[0])
    raise AssertionError(f'{path} has no _base_')


def _without(d, *keys):
    return {k: v for k, v in d.items() if k not in keys}


@pytest.mark.parametrize('path', MEMORY_CONFIGS + [SAMPLE_ZERO], ids=os.path.basename)
def test_memory_configs_change_only_the_memory_settings(path):
    from mmengine.config import Config
    cfg, base = Config.fromfile(path), Config.fromfile(_first_base(path))
    optimizer = cfg.optim_wrapper.optimizer
    assert optimizer.type == 'ZeroRedundancyOptimizer' and optimizer.optimizer_type == 'AdamW'
    # lr, betas, weight decay, the optim wrapper and its constructor: the base config's
    assert _without(optimizer, 'type', 'optimizer_type') == _without(base.optim_wrapper.optimizer, 'type')
    assert _without(cfg.optim_wrapper, 'optimizer') == _without(base.optim_wrapper, 'optimizer')
    assert cfg.model.backbone.with_cp is True and cfg.model.backbone.attn_chunk_size == 32
    assert cfg.model.backbone.mlp_chunk_size == 32
    assert _without(cfg.model.backbone, 'with_cp', 'attn_chunk_size', 'mlp_chunk_size') == \
        _without(base.model.backbone, 'with_cp', 'attn_chunk_size', 'mlp_chunk_size')
    assert _without(cfg.model, 'backbone') == _without(base.model, 'backbone')
    assert [h.type for h in cfg.custom_hooks] == ['ZeroOptimizerHook']
    for key in ('train_dataloader', 'param_scheduler', 'train_cfg', 'default_hooks'):
        assert cfg[key] == base[key], key


def test_memory_settings_are_shared():
    """The sample's ZeRO config applies exactly the settings of the SwinV2-L ones."""
    from mmengine.config import Config

    def settings(path):
        cfg = Config.fromfile(path)
        return (cfg.optim_wrapper.optimizer.type, cfg.optim_wrapper.optimizer.optimizer_type,
                cfg.model.backbone.with_cp, cfg.model.backbone.attn_chunk_size, cfg.model.backbone.mlp_chunk_size,
                [h.type for h in cfg.custom_hooks])

    assert [os.path.basename(p) for p in MEMORY_CONFIGS] == ['cascade_swinv2_l_coco_zero.py',
                                                               'upernet_swinv2_l_ade20k_zero.py']
    assert len({repr(settings(p)) for p in MEMORY_CONFIGS + [SAMPLE_ZERO]}) == 1


# --------------------------------------------------------------------------------------- scripts
def _fake_program(tmp_path, name):
    """An executable that prints its arguments (one per line) and PYTHONPATH, for checking command lines."""
    path = tmp_path / name
    path.write_text('#!/usr/bin/env bash\necho "PYTHONPATH=$PYTHONPATH"\nfor a in "$@"; do echo "$a"; done\n')
    path.chmod(0o755)
    return str(path)


def test_scripts_explain_wrong_arguments():
    for script in ('dist_train.sh', 'dist_test.sh', 'slurm_train.sh'):
        proc = subprocess.run(['bash', os.path.join(TOOLS, script)], capture_output=True, text=True)
        assert proc.returncode == 2 and 'usage:' in proc.stderr, (script, proc.stderr)
    proc = subprocess.run(['bash', os.path.join(TOOLS, 'dist_train.sh'), SAMPLE, 'two'], capture_output=True, text=True)
    assert proc.returncode == 2 and "GPUS must be a positive number of processes per node, got 'two'" in proc.stderr


@pytest.mark.parametrize('script', ['dist_train.sh', 'dist_test.sh'])
def test_dist_scripts_pass_the_multi_node_settings_to_torchrun(script, tmp_path):
    python = _fake_program(tmp_path, 'python')
    args = [SAMPLE, 'ckpt.pth', '8'] if script == 'dist_test.sh' else [SAMPLE, '8']
    env = dict(os.environ, PYTHON=python, NNODES='2', NODE_RANK='1', MASTER_ADDR='10.1.1.1', MASTER_PORT='29617')
    env.pop('PORT', None)
    out = subprocess.run(['bash', os.path.join(TOOLS, script), *args, '--cfg-options', 'a=1'], env=env,
                         capture_output=True, text=True, check=True).stdout.splitlines()
    tool = os.path.join(TOOLS, script.replace('dist_', '').replace('.sh', '.py'))
    assert out[1:] == ['-m', 'torch.distributed.run', '--nnodes=2', '--node_rank=1', '--master_addr=10.1.1.1',
                       '--nproc_per_node=8', '--master_port=29617', tool, *args[:-1], '--launcher', 'pytorch',
                       '--cfg-options', 'a=1']
    env['PORT'] = '29618'  # PORT (as mmdet's scripts) takes precedence over MASTER_PORT
    out = subprocess.run(['bash', os.path.join(TOOLS, script), *args], env=env, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert '--master_port=29618' in out


def test_slurm_train_starts_train_py_with_the_slurm_launcher(tmp_path):
    _fake_program(tmp_path, 'srun')
    env = dict(os.environ, PATH=f'{tmp_path}{os.pathsep}{os.environ["PATH"]}', GPUS='16', SRUN_ARGS='--qos=high -t 60')
    out = subprocess.run(['bash', os.path.join(TOOLS, 'slurm_train.sh'), 'gpu', 'swinv2', SAMPLE, 'work_dirs/x',
                          '--cfg-options', 'a=1'],
                         env=env, capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0].startswith(f'PYTHONPATH={TOOLS}/..')
    assert out[1:] == ['-p', 'gpu', '--job-name=swinv2', '--gres=gpu:8', '--ntasks=16', '--ntasks-per-node=8',
                       '--cpus-per-task=5', '--kill-on-bad-exit=1', '--qos=high', '-t', '60', 'python', '-u',
                       os.path.join(TOOLS, 'train.py'), SAMPLE, '--work-dir=work_dirs/x', '--launcher', 'slurm',
                       '--cfg-options', 'a=1']


@pytest.mark.e2e
def test_zero_config_without_a_launcher_says_how_to_start_it():
    """ZeroRedundancyOptimizer needs a process group: tools/train.py says so before anything is built."""
    config = os.path.join(ROOT, 'configs', 'sample', 'upernet_swinv2_t_sample_zero.py')
    result = subprocess.run([sys.executable, os.path.join(ROOT, 'tools', 'train.py'), config], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert 'tools/dist_train.sh CONFIG GPUS' in result.stderr
