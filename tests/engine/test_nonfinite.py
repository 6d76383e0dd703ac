"""NaN / Inf losses and gradients: NanGuardOptimWrapper stops (default) or skips, and never steps on them.

Training runs use mmengine's Runner on the toy model of test_checkpoint_io.py, whose loss is NaN in
chosen iterations; the wrapper-level tests call ``update_params`` directly.
"""
import hashlib
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS
from torch import nn

import swin_dense.runtime  # noqa: F401  registers the optimizer wrappers, the hooks and the backend
from swin_dense.cli import enable_amp
from swin_dense.engine.nonfinite import SKIPS_KEY, NanGuardAmpOptimWrapper, NanGuardOptimWrapper, NonFiniteLossError
from test_checkpoint_io import toy_runner

ADAMW = dict(type='AdamW', lr=0.01)


class _Fingerprint(Hook):
    """Records bytes and mtime of the latest checkpoint after each iteration (after CheckpointHook)."""

    priority = 'LOWEST'

    def __init__(self):
        self.seen = {}

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        path = runner.message_hub.get_info('last_ckpt')
        if path:
            with open(path, 'rb') as f:
                self.seen[path] = (hashlib.sha256(f.read()).hexdigest(), os.stat(path).st_mtime_ns)


def test_nan_loss_stops_naming_the_iteration_and_keeps_the_last_checkpoint(tmp_path):
    fingerprint = _Fingerprint()
    runner = toy_runner(str(tmp_path), max_iters=8, nan_iters=[5], custom_hooks=[fingerprint])
    with pytest.raises(NonFiniteLossError, match=r'non-finite loss \(nan\) at iteration 5/8') as err:
        runner.train()
    checkpoint = str(tmp_path / 'iter_4.pth')
    assert checkpoint in str(err.value) and 'optim_wrapper.on_nonfinite=skip' in str(err.value)
    assert runner.iter == 4  # iteration 5 never completed
    assert sorted(p for p in os.listdir(tmp_path) if p.endswith('.pth')) == ['iter_4.pth']
    with open(tmp_path / 'last_checkpoint') as f:
        assert f.read().strip() == checkpoint
    with open(checkpoint, 'rb') as f:
        assert (hashlib.sha256(f.read()).hexdigest(), os.stat(checkpoint).st_mtime_ns) == fingerprint.seen[checkpoint]
    saved = torch.load(checkpoint, map_location='cpu', weights_only=True)['state_dict']
    live = runner.model.state_dict()
    assert all(torch.isfinite(v).all() for v in live.values())
    assert all(torch.equal(saved[k], live[k]) for k in live)  # no step was taken from the NaN


@OPTIM_WRAPPERS.register_module()
class _NoUpdateAt3(OptimWrapper):
    """The reference: mmengine's OptimWrapper that leaves out the whole update of iteration 3."""

    def update_params(self, loss, step_kwargs=None, zero_kwargs=None):
        if MessageHub.get_current_instance().get_info('iter') + 1 == 3:
            return
        super().update_params(loss, step_kwargs, zero_kwargs)


def test_skip_drops_the_step_and_training_goes_on(tmp_path):
    skip = toy_runner(str(tmp_path / 'skip'), nan_iters=[3],
                      optim_wrapper=dict(type='NanGuardOptimWrapper', on_nonfinite='skip', optimizer=ADAMW))
    skip.train()
    assert skip.iter == 6
    assert skip.message_hub.get_info(SKIPS_KEY) == 1
    with open(skip.logger.log_file) as f:
        assert 'non-finite loss (nan) at iteration 3/6: the step is skipped (weights unchanged); 1 skipped' in f.read()
    assert 'nonfinite_skips' in str(torch.load(tmp_path / 'skip' / 'iter_6.pth', weights_only=True)['message_hub'])

    reference = toy_runner(str(tmp_path / 'reference'), optim_wrapper=dict(type='_NoUpdateAt3', optimizer=ADAMW))
    reference.train()
    ours, ref = skip.model.state_dict(), reference.model.state_dict()
    assert all(torch.equal(ours[k], ref[k]) for k in ours)
    # and the skip mattered: a run that did update in iteration 3 ends elsewhere
    full = toy_runner(str(tmp_path / 'full'))
    full.train()
    assert not torch.equal(full.model.state_dict()['linear.weight'], ours['linear.weight'])


def test_too_many_consecutive_skips_stop(tmp_path):
    runner = toy_runner(str(tmp_path), nan_iters=[2, 3, 4], optim_wrapper=dict(
        type='NanGuardOptimWrapper', on_nonfinite='skip', max_consecutive_skips=2, optimizer=ADAMW))
    with pytest.raises(NonFiniteLossError, match=r'iteration 4/6: 3 non-finite iterations in a row'):
        runner.train()


def _ddp_rank(rank: int, port: int, results) -> None:
    """One of two gloo ranks: per mode, three DDP steps with the loss NaN on rank 1 only in the second."""
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=2)
    for on_nonfinite in ('skip', 'stop'):
        torch.manual_seed(0)
        model = nn.parallel.DistributedDataParallel(nn.Linear(3, 1))
        wrapper = NanGuardOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                                       on_nonfinite=on_nonfinite)
        weights = []
        try:
            for step in range(3):
                with wrapper.optim_context(model):
                    loss = model(torch.ones(1, 3)).sum() * (float('nan') if rank == 1 and step == 1 else 1.0)
                wrapper.update_params(loss)
                weights.append(model.module.weight.detach().clone().tolist())
        except NonFiniteLossError:
            weights.append('stopped')
        results.put((rank, on_nonfinite, weights))
    # ZeRO / FSDP: each rank steps only its own shard, so an Inf gradient on rank 1's shard (finite
    # loss) must make rank 0 skip too, or the shards would drift apart
    torch.manual_seed(rank)
    shard = nn.Linear(3, 1)
    wrapper = NanGuardOptimWrapper(optimizer=torch.optim.SGD(shard.parameters(), lr=0.1), on_nonfinite='skip')
    weights = []
    for step in range(3):
        scale = float('inf') if rank == 1 and step == 1 else 1.0
        with wrapper.optim_context(shard):
            out = shard(torch.ones(1, 3))
        out.register_hook(lambda grad, scale=scale: grad * scale)
        wrapper.update_params(out.sum())
        weights.append(shard.weight.detach().clone().tolist())
    results.put((rank, 'sharded', weights))
    dist.destroy_process_group()


def test_distributed_ranks_agree():
    """A NaN on one rank makes every rank skip (or stop) together; alone, it would deadlock DDP's all-reduce.
    An Inf gradient in one rank's shard (ZeRO / FSDP) skips the step on every rank."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    ctx = mp.get_context('spawn')
    results = ctx.Queue()
    procs = [ctx.Process(target=_ddp_rank, args=(rank, port, results)) for rank in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0], 'a rank hung or failed'
    got = {}
    for _ in range(6):
        rank, mode, weights = results.get(timeout=10)
        got[rank, mode] = weights
    for rank in range(2):  # an Inf gradient on one rank's shard skips the step on both
        sharded = got[rank, 'sharded']
        assert sharded[1] == sharded[0] != sharded[2], rank
    assert got[0, 'skip'] == got[1, 'skip'] and got[0, 'stop'] == got[1, 'stop']
    skip, stop = got[0, 'skip'], got[0, 'stop']
    assert len(skip) == 3 and skip[1] == skip[0] != skip[2]  # the second step left out on both ranks
    assert len(stop) == 2 and stop[1] == 'stopped'


def _wrapper(**kwargs):
    torch.manual_seed(0)
    layer = nn.Linear(3, 1)
    return layer, NanGuardOptimWrapper(optimizer=torch.optim.SGD(layer.parameters(), lr=0.1), **kwargs)


def test_finite_loss_with_nonfinite_gradient_is_not_applied():
    layer, wrapper = _wrapper()
    before = [p.detach().clone() for p in layer.parameters()]
    x = torch.tensor([[0.0, 1.0, 2.0]])
    loss = torch.sqrt(layer(x).abs() * 0.0).sum()  # 0 with an infinite derivative
    assert torch.isfinite(loss)
    with pytest.raises(NonFiniteLossError, match='non-finite gradient'):
        wrapper.update_params(loss)
    assert all(torch.equal(a, b) for a, b in zip(before, layer.parameters()))

    layer, wrapper = _wrapper(on_nonfinite='skip', max_consecutive_skips=2)
    for _ in range(2):
        wrapper.update_params(torch.sqrt(layer(x).abs() * 0.0).sum())
        assert all(p.grad is None for p in layer.parameters())  # dropped, ready for the next batch
    wrapper.update_params(layer(x).sum())
    assert not torch.equal(before[0], layer.weight)  # the next finite batch trains
    for _ in range(2):
        wrapper.update_params(torch.sqrt(layer(x).abs() * 0.0).sum())
    with pytest.raises(NonFiniteLossError, match='3 non-finite iterations in a row'):  # gradients count too
        wrapper.update_params(torch.sqrt(layer(x).abs() * 0.0).sum())


def test_skipped_batch_keeps_gradient_accumulation_aligned():
    layer, wrapper = _wrapper(on_nonfinite='skip', accumulative_counts=2)
    x = torch.ones(1, 3)
    wrapper.update_params(layer(x).sum() * float('inf'))  # 1st of the window: dropped
    before = layer.weight.detach().clone()
    wrapper.update_params(layer(x).sum())  # 2nd: the window's step, from this batch only
    assert wrapper.inner_count == 2
    assert torch.allclose(layer.weight, before - 0.1 * 0.5 * x)  # lr 0.1, loss scaled by 1/2
    assert all(p.grad is None for p in layer.parameters())


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="on_nonfinite must be one of"):
        _wrapper(on_nonfinite='ignore')
    with pytest.raises(ValueError, match='max_consecutive_skips must be >= 1'):
        _wrapper(max_consecutive_skips=0)


@pytest.mark.parametrize('kind,amp_kind', [('NanGuardOptimWrapper', 'NanGuardAmpOptimWrapper'),
                                           ('OptimWrapper', 'AmpOptimWrapper')])
def test_amp_switch_keeps_the_guard(kind, amp_kind):
    cfg = Config(dict(optim_wrapper=dict(type=kind, on_nonfinite='skip', optimizer=ADAMW)))
    enable_amp(cfg, 'bfloat16')
    assert cfg.optim_wrapper.type == amp_kind and cfg.optim_wrapper.on_nonfinite == 'skip'
    assert cfg.optim_wrapper.loss_scale == 'dynamic' and cfg.optim_wrapper.dtype == 'bfloat16'
    with pytest.raises(ValueError, match='--amp works with optim_wrapper types'):
        enable_amp(Config(dict(optim_wrapper=dict(type='ApexOptimWrapper'))))


def test_amp_wrapper_is_the_guard_over_mmengines_amp_wrapper():
    assert OPTIM_WRAPPERS.get('NanGuardAmpOptimWrapper') is NanGuardAmpOptimWrapper
    mro = NanGuardAmpOptimWrapper.__mro__
    assert mro.index(swin_dense.engine.nonfinite.NanGuard) < mro.index(OPTIM_WRAPPERS.get('AmpOptimWrapper'))
