"""SwinV2LayerDecayOptimizerConstructor: per-parameter lr scales (official Swin numbering), no weight
decay on norms / CPB / logit scale / q,v biases, registry visibility from the mmdet and mmseg scopes."""
import pytest
import torch
import torch.nn as nn
from mmengine.optim import build_optim_wrapper
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS, DefaultScope

import swin_dense  # noqa: F401  registers the constructor
from swin_dense.engine.layer_decay import SwinV2LayerDecayOptimizerConstructor, swinv2_layer_id
from swin_dense.models import SwinTransformerV2

DEPTHS = [1, 2, 1, 1]  # D = 5 blocks -> num_layers = 6
BASE_LR, WD, DECAY = 1e-3, 0.05, 0.8
NO_DECAY = ('cpb_mlp', 'logit_scale', 'q_bias', 'v_bias')


class TinyDetector(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = SwinTransformerV2(arch=dict(embed_dims=8, depths=DEPTHS, num_heads=[1, 2, 2, 4]),
                                          window_size=4, drop_path_rate=0.0)
        self.neck = nn.Conv2d(8, 8, 1)
        self.head = nn.Sequential(nn.Conv2d(8, 8, 3), nn.BatchNorm2d(8), nn.Linear(8, 2))


def _expected_layer(name):
    """The documented table, written out independently of the implementation."""
    table = {
        'backbone.patch_embed': 0,
        'backbone.layers.0.blocks.0': 1,
        'backbone.layers.0.downsample': 1,
        'backbone.layers.1.blocks.0': 2,
        'backbone.layers.1.blocks.1': 3,
        'backbone.layers.1.downsample': 3,
        'backbone.layers.2.blocks.0': 4,
        'backbone.layers.2.downsample': 4,
        'backbone.layers.3.blocks.0': 5,
    }
    for prefix, layer in table.items():
        if name.startswith(prefix + '.'):
            return layer
    return 6  # output norms norm0..3, neck, head


def _is_no_decay(name, module_types):
    return module_types[name] in (nn.LayerNorm, nn.BatchNorm2d) or any(k in name for k in NO_DECAY)


def _build(model, decay_rate=DECAY, **extra):
    cfg = dict(type='OptimWrapper', constructor='SwinV2LayerDecayOptimizerConstructor',
               optimizer=dict(type='AdamW', lr=BASE_LR, weight_decay=WD),
               paramwise_cfg=dict(decay_rate=decay_rate, norm_decay_mult=0.,
                                  custom_keys={k: dict(decay_mult=0.) for k in NO_DECAY}, **extra))
    return build_optim_wrapper(model, cfg)


def _module_types(model):
    out = {}
    for mod_name, mod in model.named_modules():
        for p_name, _ in mod.named_parameters(recurse=False):
            out[f'{mod_name}.{p_name}' if mod_name else p_name] = type(mod)
    return out


def test_lr_and_weight_decay_per_parameter():
    model = TinyDetector()
    groups = _build(model).optimizer.param_groups
    names = dict(model.named_parameters())
    types = _module_types(model)
    assert len(groups) == len(names)  # one group per parameter
    seen = set()
    for g in groups:
        (param,) = g['params']
        name = g['param_name']
        assert names[name] is param
        seen.add(name)
        layer = _expected_layer(name)
        assert g['layer_id'] == layer, name
        assert g['lr'] == pytest.approx(BASE_LR * DECAY ** (6 - layer)), name
        assert g['weight_decay'] == (0.0 if _is_no_decay(name, types) else WD), name
    assert seen == set(names)
    by_name = {g['param_name']: g for g in groups}
    # spot checks of the table's corners
    assert by_name['backbone.patch_embed.proj.weight']['lr'] == pytest.approx(BASE_LR * DECAY ** 6)
    assert by_name['backbone.layers.3.blocks.0.mlp.fc1.weight']['lr'] == pytest.approx(BASE_LR * DECAY)
    assert by_name['backbone.norm3.weight']['lr'] == pytest.approx(BASE_LR)
    assert by_name['neck.weight']['lr'] == pytest.approx(BASE_LR)
    # the no-decay list, and decay everywhere else (biases of Linear layers included)
    for name in ('backbone.layers.0.blocks.0.attn.cpb_mlp.0.weight', 'backbone.layers.0.blocks.0.attn.logit_scale',
                 'backbone.layers.1.blocks.1.attn.q_bias', 'backbone.layers.1.blocks.1.attn.v_bias',
                 'backbone.layers.0.blocks.0.norm1.weight', 'backbone.layers.0.downsample.norm.bias',
                 'backbone.patch_embed.norm.weight', 'backbone.norm0.weight', 'head.1.weight'):
        assert by_name[name]['weight_decay'] == 0.0, name
    for name in ('backbone.layers.0.blocks.0.attn.qkv.weight', 'backbone.layers.0.blocks.0.mlp.fc1.bias',
                 'backbone.layers.0.downsample.reduction.weight', 'backbone.patch_embed.proj.weight',
                 'neck.weight', 'head.2.weight'):
        assert by_name[name]['weight_decay'] == WD, name


def test_layer_id_function_matches_official_numbering():
    depths = [2, 2, 18, 2]
    n = sum(depths) + 1
    assert swinv2_layer_id('backbone.patch_embed.proj.weight', depths, n) == 0
    assert swinv2_layer_id('backbone.layers.0.blocks.0.attn.qkv.weight', depths, n) == 1
    assert swinv2_layer_id('backbone.layers.2.blocks.17.norm2.bias', depths, n) == 4 + 17 + 1
    assert swinv2_layer_id('backbone.layers.2.downsample.reduction.weight', depths, n) == 22
    assert swinv2_layer_id('backbone.layers.3.blocks.1.mlp.fc2.weight', depths, n) == 24
    assert swinv2_layer_id('backbone.norm3.weight', depths, n) == n == 25
    assert swinv2_layer_id('roi_head.bbox_head.0.fc_cls.weight', depths, n) == n


def test_no_decay_rate_means_plain_lrs_and_bad_args_raise():
    model = TinyDetector()
    groups = _build(model, decay_rate=1.0).optimizer.param_groups
    assert all(g['lr'] == pytest.approx(BASE_LR) for g in groups)
    with pytest.raises(ValueError, match='num_layers'):
        _build(model, num_layers=3)
    with pytest.raises(ValueError, match='decay_rate'):
        _build(model, decay_rate=1.5)
    # a larger num_layers shifts every layer down by the same factor
    groups = _build(model, num_layers=8).optimizer.param_groups
    top = [g for g in groups if g['param_name'] == 'neck.weight'][0]
    assert top['lr'] == pytest.approx(BASE_LR)
    pe = [g for g in groups if g['param_name'] == 'backbone.patch_embed.proj.weight'][0]
    assert pe['lr'] == pytest.approx(BASE_LR * DECAY ** 8)


def test_warmup_keeps_layer_ratios():
    """mmengine's schedulers scale each group from its own initial lr, so the layer ratios survive warm-up."""
    from mmengine.optim import LinearLR
    model = TinyDetector()
    wrapper = _build(model)
    sched = LinearLR(wrapper, start_factor=0.1, by_epoch=False, begin=0, end=10)
    for _ in range(3):
        sched.step()
    groups = wrapper.optimizer.param_groups
    ratios = {g['param_name']: g['lr'] / g['initial_lr'] for g in groups}
    assert max(ratios.values()) == pytest.approx(min(ratios.values()))
    by_name = {g['param_name']: g for g in groups}
    assert by_name['backbone.patch_embed.proj.weight']['lr'] / by_name['neck.weight']['lr'] == pytest.approx(DECAY ** 6)


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg'])
def test_found_from_downstream_scopes(scope):
    pytest.importorskip(scope)
    registry = __import__(f'{scope}.registry', fromlist=['OPTIM_WRAPPER_CONSTRUCTORS']).OPTIM_WRAPPER_CONSTRUCTORS
    with DefaultScope.overwrite_default_scope(scope):
        cls = registry.get('SwinV2LayerDecayOptimizerConstructor')
    assert cls is SwinV2LayerDecayOptimizerConstructor
    assert OPTIM_WRAPPER_CONSTRUCTORS.get('SwinV2LayerDecayOptimizerConstructor') is SwinV2LayerDecayOptimizerConstructor


def test_wrapped_model_and_frozen_params():
    """DDP-style wrappers (``.module``) are unwrapped; frozen parameters are left out (as mmengine does)."""
    model = TinyDetector()
    model.backbone.patch_embed.proj.weight.requires_grad_(False)

    class Wrapper(nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module
    groups = _build(Wrapper(model)).optimizer.param_groups
    names = {n for n, _ in model.named_parameters()}
    assert {g['param_name'] for g in groups} == names - {'backbone.patch_embed.proj.weight'}
    assert all(torch.is_tensor(g['params'][0]) and g['params'][0].requires_grad for g in groups)
