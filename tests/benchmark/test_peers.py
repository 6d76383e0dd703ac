"""swin_dense.benchmark.peers: building the implementations (the peers themselves where installed)."""
import importlib.util
import sys

import pytest
import torch

from bench_helpers import ARCH, WINDOW, tiny_state
from swin_dense.benchmark.extras import MissingExtra
from swin_dense.benchmark.peers import (DEFAULT_IMPLS, IMPLS, MMPretrainImpl, TimmImpl, make_impls, stage_maps,
                                        timm_static_ok)

CPU = torch.device('cpu')
PEERS_INSTALLED = all(importlib.util.find_spec(m) is not None for m in ('timm', 'mmpretrain'))


@pytest.fixture(scope='module')
def state():
    return tiny_state()


def test_names():
    assert DEFAULT_IMPLS == ('swin_dense', 'timm', 'mmpretrain') and set(DEFAULT_IMPLS) < set(IMPLS)


def test_stage_maps_and_timm_static_masks():
    assert stage_maps(64, 96, 4) == [(16, 24), (8, 12), (4, 6), (2, 3)]
    assert stage_maps(66, 64, 4) == [(17, 16), (9, 8), (5, 4), (3, 2)]
    assert timm_static_ok(128, 128, 4, 4)
    assert not timm_static_ok(112, 144, 4, 4)  # stage 1 is 14x18, shifted windows of 4
    assert not timm_static_ok(80, 80, 4, 4)  # not a multiple of 4 * 2 ** 3


def test_swin_dense_variants_give_the_same_outputs(state):
    impls = make_impls(['swin_dense', 'swin_dense_unfused'], ARCH, WINDOW, state, CPU)
    assert list(impls) == ['swin_dense', 'swin_dense_unfused']
    x = torch.randn(1, 3, 64, 96)
    outs = {}
    for name, impl in impls.items():
        model = impl.build((64, 96)).eval()
        assert impl.build((128, 128)) is model  # not rebuilt per size
        impl.set_with_cp(True)
        impl.set_chunks([2, 0, 0, 0], [0, 2, 0, 0])
        blocks = [(b.attn.chunk_size, b.mlp_chunk_size) for s in impl._backbone().layers for b in s.blocks]
        assert blocks == [(2, 0)] * 2 + [(0, 2)] * 2 + [(0, 0)] * 4  # depths 2-2-2-2
        assert impl.param_for_grad_check() is impl._backbone().patch_embed.proj.weight
        assert all(stage.with_cp for stage in impl._backbone().layers)
        assert impl.static_buffer_bytes() == 0
        fused = [m.fused for m in model.modules() if hasattr(m, 'fused')]
        assert fused and all(fused) is (name == 'swin_dense') and any(fused) is (name == 'swin_dense')
        with torch.no_grad():
            outs[name] = model(x)
    assert len(outs['swin_dense']) == 4
    for a, b in zip(outs['swin_dense'], outs['swin_dense_unfused']):
        # fused vs plain Linear on the same weights: fp32 summation order only (LayerNorm-ed outputs ~1, a few ulps)
        assert (a - b).abs().max() < 1e-5


@pytest.mark.parametrize('impl_class, module', [(TimmImpl, 'timm'), (MMPretrainImpl, 'mmpretrain')])
def test_a_missing_peer_names_the_extra(state, monkeypatch, impl_class, module):
    for name in list(sys.modules):
        if name == module or name.startswith(module + '.'):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    impl = impl_class(ARCH, WINDOW, state, CPU)
    with pytest.raises(MissingExtra, match=r'pip install swin_dense\[bench\]') as err:
        impl.build((128, 128))
    assert isinstance(err.value, ImportError) and f'the {module} peer needs {module}' in str(err.value)


@pytest.mark.skipif(not PEERS_INSTALLED, reason='the peers (timm, mmpretrain): pip install swin_dense[bench]')
def test_peers_load_the_same_weights_and_agree(state):
    impls = make_impls(['swin_dense', 'timm', 'mmpretrain'], ARCH, WINDOW, state, CPU)
    x = torch.randn(1, 3, 128, 128)
    outs = {}
    for name, impl in impls.items():
        model = impl.build((128, 128))
        model.eval()  # (mmpretrain's train() returns None)
        with torch.no_grad():
            outs[name] = model(x)
    assert impls['timm'].note == 'static masks' and impls['timm'].static_buffer_bytes() > 0
    first = impls['timm'].model
    assert impls['timm'].build((128, 128)) is not first  # rebuilt per size
    for name in ('timm', 'mmpretrain'):
        assert [o.shape for o in outs[name]] == [o.shape for o in outs['swin_dense']]
        # fp32 against fp32 of another library (both carry their kernels' rounding, tests/numerics.py): the benchmark
        # only needs the same model; a wrong weight mapping moves outputs by O(0.1)
        assert max(float((a - b).abs().max()) for a, b in zip(outs[name], outs['swin_dense'])) < 1e-4
