"""swin_dense.benchmark.profile: FLOP per module from FlopCounterMode, and the per-part table."""
import pytest
import torch

from bench_helpers import ARCH, WINDOW, bench_args
from swin_dense.benchmark.measurement import make_step
from swin_dense.benchmark.profile import (ATTENTION, MERGING, MLP, PARTS, PROJECTION, module_flops, part_modules,
                                          profile_swin_dense, time_parts_swin_dense)
from swin_dense.models import SwinTransformerV2


def _hand_counted(model, x):
    """The multiply-adds (x2) that --time-parts counted by hand before FlopCounterMode, per part."""
    flops = dict.fromkeys(PARTS, 0)
    rules = {MLP: lambda m, i: 4 * i.numel() * m.fc1.out_features,
             ATTENTION: lambda m, i: 2 * i.numel() * (4 * i.shape[-1] + 2 * i.shape[1]),
             PROJECTION: lambda m, i: 2 * i.numel() * m.out_features,
             MERGING: lambda m, i: 2 * i.numel() * m.reduction.out_features}
    handles = []
    for name, modules in part_modules(model).items():
        for _, module in modules:
            def count(mod, inputs, output, name=name):
                flops[name] += rules[name](mod, inputs[0])
            handles.append(module.register_forward_hook(count))
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return flops


@pytest.mark.parametrize('fused', [True, False])
@pytest.mark.parametrize('chunk', [0, 2])
def test_flop_counter_counts_what_the_formulas_did(fused, chunk):
    """FlopCounterMode, with the fused CPU Linear and attention kernels added to its table, gives per
    part exactly the formulas --time-parts used (fused Linear layers or not, chunked or not)."""
    model = SwinTransformerV2(arch=ARCH, window_size=WINDOW, drop_path_rate=0.0, attn_chunk_size=chunk,
                              mlp_chunk_size=chunk).eval()
    model.set_fused_linear(fused)
    x = torch.randn(1, 3, 64, 96)
    step = make_step(model, x, 'forward', 'fp32')
    step()  # fills the position-bias cache, as the tool's warm-up does
    counted = module_flops(model, step)
    parts = part_modules(model)
    assert [len(parts[p]) for p in PARTS] == [8, 8, 8, 3]
    flops = {name: sum(counted[q] for q, _ in modules) for name, modules in parts.items()}
    assert flops == _hand_counted(model, x)
    expected_mlp = sum(2 * 2 * 4 * (16 * 2 ** i) ** 2 * (384 >> 2 * i) * 2 for i in range(4))
    assert flops[MLP] == expected_mlp
    assert counted[''] > sum(flops[p] for p in PARTS if not p.startswith(' '))  # + the patch embedding


def test_time_parts_table():
    text = time_parts_swin_dense(ARCH, bench_args(repeats=2), (64, 96))
    lines = text.splitlines()
    assert lines[0].startswith('forward 64x96: ') and lines[0].endswith('s per forward (hooks in), 2 forwards')
    rows = {line[:42].strip(): line[42:].split() for line in lines[2:]}
    assert list(rows) == ['MLP (fc1 + GELU, fc2)', 'window attention (qkv, attention, proj)',
                          'of which output projection', 'patch merging', 'everything else']
    # shares (of the unrounded times; a part can print as 0.000 s at this size)
    parts = [float(rows[name][1].rstrip('%')) for name in ('MLP (fc1 + GELU, fc2)',
                                                           'window attention (qkv, attention, proj)', 'patch merging')]
    assert all(p > 0 for p in parts) and sum(parts) <= 100  # only the timed forwards are summed
    assert float(rows['of which output projection'][1].rstrip('%')) <= parts[1]
    assert rows['everything else'][2] == '0.000' and rows['everything else'][3] == '-'


def test_time_parts_times_with_the_threads_it_was_given():
    """torch.utils.benchmark.Timer would run on one thread unless told otherwise."""
    saved = torch.get_num_threads()
    seen = []
    handle = torch.nn.modules.module.register_module_forward_pre_hook(
        lambda module, inputs: seen.append(torch.get_num_threads()))
    try:
        torch.set_num_threads(2)
        time_parts_swin_dense(ARCH, bench_args(), (64, 64))
        assert set(seen) == {2} and torch.get_num_threads() == 2
    finally:
        handle.remove()
        torch.set_num_threads(saved)


def test_profile_table():
    text = profile_swin_dense(ARCH, bench_args(), (64, 64), 5)
    assert 'Self CPU' in text and 'aten::' in text
