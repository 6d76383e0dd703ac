"""swin_dense.benchmark.measurement: steps, interleaved timing and memory, on toy models."""
import pytest
import torch
import torch.nn as nn

from swin_dense.benchmark.measurement import (interleaved_times, is_oom, make_step, memory_of, mib, peak_and_total,
                                              timed)

CPU = torch.device('cpu')


class TwoOutputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 8)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        y = self.drop(self.lin(x))
        return y, 2 * y


def test_forward_step_is_eval_without_grad():
    model, x = TwoOutputs(), torch.randn(4, 8)
    outs = make_step(model, x, 'forward', 'fp32')()
    assert not model.training and all(not o.requires_grad for o in outs)
    assert torch.equal(outs[0], model.lin(x).detach())  # eval: dropout off


def test_train_step_backpropagates_and_releases_gradients():
    model, x = TwoOutputs(), torch.randn(4, 8)
    step = make_step(model, x, 'train', 'fp32')
    outs = step()
    assert model.training and all(not o.requires_grad for o in outs)
    assert model.lin.weight.grad is not None and float(model.lin.weight.grad.abs().sum()) > 0
    step.release()
    assert model.lin.weight.grad is None


def test_bf16_step_runs_under_autocast():
    model, x = nn.Linear(8, 8), torch.randn(4, 8)
    model.forward = lambda inp, f=model.forward: (f(inp),)
    out, = make_step(model, x, 'forward', 'bf16')()
    assert out.dtype == torch.bfloat16


def test_interleaved_times_rotate_the_order_and_drop_a_failing_step():
    calls = []

    def step(name):
        return lambda: calls.append(name)

    def failing():
        calls.append('c')
        raise MemoryError('out of memory')

    times, failed = interleaved_times({'a': step('a'), 'b': step('b'), 'c': failing}, 3, CPU)
    assert calls == ['a', 'b', 'c', 'b', 'a', 'a', 'b']  # round 2 starts at b, round 3 at (c, skipped) a
    assert [len(times[n]) for n in 'abc'] == [3, 3, 0] and all(t >= 0 for t in times['a'])
    assert set(failed) == {'c'} and is_oom(failed['c'])
    assert interleaved_times({}, 2, CPU) == ({}, {})


def test_timed_measures_one_call():
    assert timed(lambda: sum(range(1000)), CPU) > 0


def test_peak_and_total():
    assert peak_and_total([100, 50, -100, 200, -250]) == (250, 0)
    assert peak_and_total([]) == (0, 0)


def test_memory_of_a_cpu_step_sees_its_allocations():
    kept = []

    def step():
        big = torch.ones(1 << 20)  # 4 MiB, freed at the end
        kept.append(torch.ones(1 << 18))  # 1 MiB, left allocated (like a cache)
        return big.sum()

    peak, retained = memory_of(step, CPU)
    assert peak >= 5 * 2 ** 20 - 4096 and 2 ** 20 <= retained < 2 * 2 ** 20
    assert step.rss_growth is None or step.rss_growth >= 0


def test_memory_of_releases_train_gradients():
    model, x = TwoOutputs(), torch.randn(4, 8)
    step = make_step(model, x, 'train', 'fp32')
    peak, retained = memory_of(step, CPU)
    assert peak > 0 and retained < 4096 and model.lin.weight.grad is None


@pytest.mark.parametrize('err, oom', [(MemoryError(), True), (RuntimeError("CPU: can't allocate memory"), True),
                                      (RuntimeError('CUDA out of memory'), True), (ValueError('bad'), False)])
def test_is_oom(err, oom):
    assert is_oom(err) is oom


def test_mib():
    assert mib(None) is None and mib(3 * 2 ** 20) == 3.0
