"""The memory plan's pieces: meta-device parameters, the traced activation peak, the per-GPU arithmetic."""
import pytest
import torch

from swin_dense import SwinTransformerV2
from swin_dense.benchmark.memory_plan import ModelState, activation_per_image, model_state, plan_rows
from swin_dense.benchmark.meta import empty_parameters, parameter_count
from swin_dense.benchmark.traced_memory import traced_train_peak

ARCH = dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8])


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


def test_activation_scales_with_pixels():
    with empty_parameters():
        meta = _tiny()
    scaled, per_pixel = activation_per_image(meta, [128, 256], (512, 512))
    low, high = per_pixel[128], per_pixel[256]
    # masks and per-window position bias are per-size constants: the per-pixel cost settles from above
    assert high <= low * 1.05
    assert scaled == pytest.approx(high * 512 * 512)


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
    rows = plan_rows('x', ModelState(total=2 * 2 ** 30, root=0, largest_block=0), 2 ** 30, {8: 1, 16: 1, 32: 1})
    ddp8 = next(r for r in rows if r['strategy'] == 'DDP' and r['gpus'] == 8)
    assert ddp8['total_gib'] == 41 and ddp8['fits'] == {40: False, 80: True}
