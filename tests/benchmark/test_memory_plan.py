"""The memory plan's pieces: meta-device parameters, the traced activation peak, the per-GPU arithmetic,
and tools/memory_plan.py --write on a document with its markers."""
import importlib.util
import os

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensor

from mmengine.config import Config
from mmengine.registry import MODELS

from swin_dense import SwinTransformerV2
from swin_dense.benchmark.memory_plan import END_MARKER, ModelState, activation_peak, model_state, plan_rows
from swin_dense.benchmark.meta import empty_parameters, parameter_count
from swin_dense.benchmark.traced_memory import traced_train_peak
from swin_dense.cli import setup_scope

ARCH = dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8])
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BEGIN = '<!-- memory-plan:begin (written by tools/memory_plan.py --write docs/distributed.md) -->'


def _tiny(**kwargs) -> SwinTransformerV2:
    return SwinTransformerV2(arch=ARCH, window_size=4, drop_path_rate=0.0, **kwargs).train()


def test_empty_parameters_are_meta_with_the_real_count():
    with empty_parameters():
        meta = _tiny()
    assert all(p.is_meta for p in meta.parameters())
    assert parameter_count(meta) == parameter_count(_tiny())
    assert not next(iter(_tiny().parameters())).is_meta  # the patch is gone after the block


def test_traced_peak_counts_gradients():
    model = _tiny()
    grads = sum(p.numel() * 4 for p in model.parameters())
    kept = traced_train_peak(model, (1, 3, 128, 128))
    dropped = traced_train_peak(model, (1, 3, 128, 128), keep_grads=False)
    assert 0 < dropped['peak'] < kept['peak'] <= dropped['peak'] + grads


def test_meta_model_traces_like_the_real_one():
    with empty_parameters():
        meta = _tiny()
    real = traced_train_peak(_tiny(), (1, 3, 128, 128), keep_grads=False)['peak']
    # the fake parameters that replace the meta ones are excluded like real ones; what is left may
    # differ by the few small tensors whose storages the two setups share or not (measured: < 1 %)
    assert traced_train_peak(meta, (1, 3, 128, 128), keep_grads=False)['peak'] == pytest.approx(real, rel=0.01)


def test_activation_peak_is_traced_at_the_size_and_batch_given():
    kwargs = dict(arch=ARCH, window_size=4, drop_path_rate=0.0)
    one = activation_peak(kwargs, (96, 128), 1)
    with empty_parameters():
        fresh = _tiny()
    assert one == traced_train_peak(fresh, (1, 3, 96, 128), keep_grads=False)['peak']
    assert activation_peak(kwargs, (96, 128), 1) == one  # every trace counts the masks a first step builds
    two = activation_peak(kwargs, (96, 128), 2)
    # per-size constants (the shifted-window masks) are built once per step, not once per image
    assert one < two < 2 * one


def test_activation_peak_follows_the_padding_not_the_pixels():
    """66 px pads stage 0 (17x17 tokens) to 5 windows of 4 a side, as 80 px (20x20): nearly the same
    peak with 32 % fewer pixels, which is why the plan traces the training size instead of scaling."""
    kwargs = dict(arch=ARCH, window_size=4, drop_path_rate=0.0)
    padded, whole = activation_peak(kwargs, (66, 66), 1), activation_peak(kwargs, (80, 80), 1)
    assert padded / 66 ** 2 > 1.2 * whole / 80 ** 2


def test_a_trace_leaves_no_fake_tensor_in_the_layers_caches():
    with empty_parameters():
        traced = _tiny()
    traced_train_peak(traced, (1, 3, 64, 64))
    outs = _tiny()(torch.randn(1, 3, 64, 64))  # same size: the masks' cache keys of the trace
    assert not any(isinstance(o, FakeTensor) for o in outs) and torch.isfinite(outs[0]).all()


def test_model_state_and_strategies():
    state = model_state(_tiny())
    blocks = [parameter_count(b) for stage in _tiny().layers for b in stage.blocks]
    assert state.total == parameter_count(_tiny()) and state.largest_block == max(blocks)
    assert state.root == state.total - sum(blocks)
    p = 1000
    s = ModelState(total=p, root=100, largest_block=50)
    assert s.bytes_per_gpu('DDP', 8) == 20 * p
    assert s.bytes_per_gpu('ZeRO-1', 8) == 12 * p + 8 * p / 8
    assert s.bytes_per_gpu('FSDP', 8) == 16 * p / 8 + 4 * 100 + 16 * 50
    with pytest.raises(ValueError, match='unknown strategy'):
        s.bytes_per_gpu('ZeRO-3', 8)
    gib = 2 ** 30
    rows = plan_rows('x', ModelState(total=2 * gib, root=0, largest_block=0), {8: 2, 16: 1},
                     {1: gib, 2: 3 * gib})
    ddp = {r['gpus']: r for r in rows if r['strategy'] == 'DDP'}
    assert ddp[8]['total_gib'] == 43 and ddp[8]['fits'] == {40: False, 80: True}
    assert ddp[16]['activation_gib'] == 1 and ddp[16]['images_per_gpu'] == 1


def _tool():
    spec = importlib.util.spec_from_file_location('memory_plan_tool', os.path.join(ROOT, 'tools', 'memory_plan.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_tool_writes_the_plan_into_a_document(tmp_path, monkeypatch, capsys):
    tool = _tool()
    # the tiny segmentation sample, 2 / 1 / 1 images of 64x64 on 8 / 16 / 32 GPUs
    monkeypatch.setattr(tool, 'CONFIGS', [('tiny', 'configs/sample/upernet_swinv2_t_sample.py', (64, 64),
                                           {8: 2, 16: 1, 32: 1})])
    doc = tmp_path / 'distributed.md'
    before, after = '# Distributed\n\nprose\n\n', '\n\n## Next section\n'
    doc.write_text(f'{before}{BEGIN}\nstale\n{END_MARKER}{after}', encoding='utf-8')
    assert tool.main(['--write', str(doc)]) == 0
    text = doc.read_text(encoding='utf-8')
    assert text.startswith(before + BEGIN + '\n') and text.endswith(END_MARKER + after)
    plan = text[len(before + BEGIN):-len(END_MARKER + after)]
    assert 'stale' not in plan and f'Made by `{tool.COMMAND}`' in plan
    table = [line for line in plan.splitlines() if line.startswith('| tiny |')]
    assert len(table) == 9  # 3 strategies x 3 GPU counts
    assert {(line.split('|')[2].strip(), int(line.split('|')[3])) for line in table} == \
        {(s, g) for s in ('DDP', 'ZeRO-1', 'FSDP') for g in (8, 16, 32)}
    assert all(line.endswith('| yes | yes |') for line in table)  # 3 M parameters at 64 px fit anywhere
    cfg = Config.fromfile(os.path.join(ROOT, 'configs/sample/upernet_swinv2_t_sample.py'))
    setup_scope(cfg)
    count = parameter_count(MODELS.build(cfg.model))  # the whole segmentor, built for real (tiny)
    assert f'- tiny (`configs/sample/upernet_swinv2_t_sample.py`, 64x64): {count:,} parameters' in plan
    assert tool.main(['--write', str(doc)]) == 0 and doc.read_text(encoding='utf-8') == text
    capsys.readouterr()
    bare = tmp_path / 'bare.md'
    bare.write_text('no markers here\n', encoding='utf-8')
    assert tool.main(['--write', str(bare)]) == 1
    assert bare.read_text(encoding='utf-8') == 'no markers here\n'
    assert 'no generated block' in capsys.readouterr().err
