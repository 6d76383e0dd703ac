"""SwinV2LayerDecayOptimizerConstructor: per-parameter lr scales from the backbone's get_layer_depth
(official Swin numbering), no weight decay on norms / CPB / logit scale / q,v biases, registry
visibility from the mmdet and mmseg scopes; the same layer ids for mmdet's and mmseg's Swin V1
``SwinTransformer`` through the fallback (``stages`` instead of ``layers``, ``absolute_pos_embed`` at
layer 0) with no decay on its position-bias tables; any backbone with a get_layer_depth; a clear
error for backbones without one."""
import pytest
import torch
import torch.nn as nn
from mmengine.optim import build_optim_wrapper
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS, DefaultScope

import swin_dense  # noqa: F401  registers the constructor
from swin_dense.engine.layer_decay import (SwinV1LayerDepth, SwinV2LayerDecayOptimizerConstructor,
                                           backbone_layer_depth, swin_v1_layer_depth)
from swin_dense.models import SwinTransformerV2
from swin_dense.models.backbones.layer_depth import swin_layer_depth

DEPTHS = [1, 2, 1, 1]  # D = 5 blocks -> num_layers = 6
BASE_LR, WD, DECAY = 1e-3, 0.05, 0.8
NO_DECAY = ('cpb_mlp', 'logit_scale', 'q_bias', 'v_bias')
# the V1 counterparts (configs/cascade_swin_*_coco.py add them to the V2 list; they match no V2 parameter)
NO_DECAY_V1 = ('relative_position_bias_table', 'absolute_pos_embed')
HEADS = [1, 2, 2, 4]


def _v1_swin(scope):
    """A tiny mmdet or mmseg Swin V1 with the same depths, with an absolute position embedding."""
    backbones = pytest.importorskip(f'{scope}.models.backbones')
    return backbones.SwinTransformer(pretrain_img_size=32, embed_dims=8, depths=DEPTHS, num_heads=HEADS,
                                     window_size=4, drop_path_rate=0.0, use_abs_pos_embed=True)


class TinyDetector(nn.Module):
    def __init__(self, backbone=None):
        super().__init__()
        self.backbone = backbone or SwinTransformerV2(arch=dict(embed_dims=8, depths=DEPTHS, num_heads=HEADS),
                                                      window_size=4, drop_path_rate=0.0)
        self.neck = nn.Conv2d(8, 8, 1)
        self.head = nn.Sequential(nn.Conv2d(8, 8, 3), nn.BatchNorm2d(8), nn.Linear(8, 2))


def _expected_layer(name, stages='layers'):
    """The documented table, written out independently of the implementation (``stages``: 'layers' for
    SwinV2, 'stages' for Swin V1)."""
    table = {
        'backbone.patch_embed': 0,
        'backbone.absolute_pos_embed': 0,
        f'backbone.{stages}.0.blocks.0': 1,
        f'backbone.{stages}.0.downsample': 1,
        f'backbone.{stages}.1.blocks.0': 2,
        f'backbone.{stages}.1.blocks.1': 3,
        f'backbone.{stages}.1.downsample': 3,
        f'backbone.{stages}.2.blocks.0': 4,
        f'backbone.{stages}.2.downsample': 4,
        f'backbone.{stages}.3.blocks.0': 5,
    }
    for prefix, layer in table.items():
        if name == prefix or name.startswith(prefix + '.'):
            return layer
    return 6  # output norms norm0..3, neck, head


def _is_no_decay(name, module_types):
    return module_types[name] in (nn.LayerNorm, nn.BatchNorm2d) or any(k in name for k in NO_DECAY + NO_DECAY_V1)


def _build(model, decay_rate=DECAY, **extra):
    cfg = dict(type='OptimWrapper', constructor='SwinV2LayerDecayOptimizerConstructor',
               optimizer=dict(type='AdamW', lr=BASE_LR, weight_decay=WD),
               paramwise_cfg=dict(decay_rate=decay_rate, norm_decay_mult=0.,
                                  custom_keys={k: dict(decay_mult=0.) for k in NO_DECAY + NO_DECAY_V1}, **extra))
    return build_optim_wrapper(model, cfg)


def _module_types(model):
    out = {}
    for mod_name, mod in model.named_modules():
        for p_name, _ in mod.named_parameters(recurse=False):
            out[f'{mod_name}.{p_name}' if mod_name else p_name] = type(mod)
    return out


def _check_every_group(model, stages):
    """Every parameter has its own group with the table's lr and the expected weight decay."""
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
        layer = _expected_layer(name, stages)
        assert g['layer_id'] == layer, name
        assert g['lr'] == pytest.approx(BASE_LR * DECAY ** (6 - layer)), name
        assert g['lr_scale'] == pytest.approx(DECAY ** (6 - layer)), name
        assert g['weight_decay'] == (0.0 if _is_no_decay(name, types) else WD), name
    assert seen == set(names)
    return {g['param_name']: g for g in groups}


def test_lr_and_weight_decay_per_parameter():
    by_name = _check_every_group(TinyDetector(), 'layers')
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


def _layer_id(name, depths, stages='layers'):
    """The layer id as the constructor records it (the top is ``sum(depths) + 1`` by default)."""
    depth, num_layers = swin_layer_depth(name, depths, 'backbone.', stages=stages)
    assert num_layers == sum(depths) + 2
    return depth


def test_layer_id_function_matches_official_numbering():
    depths = [2, 2, 18, 2]
    n = sum(depths) + 1
    assert _layer_id('backbone.patch_embed.proj.weight', depths) == 0
    assert _layer_id('backbone.layers.0.blocks.0.attn.qkv.weight', depths) == 1
    assert _layer_id('backbone.layers.2.blocks.17.norm2.bias', depths) == 4 + 17 + 1
    assert _layer_id('backbone.layers.2.downsample.reduction.weight', depths) == 22
    assert _layer_id('backbone.layers.3.blocks.1.mlp.fc2.weight', depths) == 24
    assert _layer_id('backbone.norm3.weight', depths) == n == 25
    assert _layer_id('roi_head.bbox_head.0.fc_cls.weight', depths) == n
    # the backbone's own method is this function over its depths
    backbone = SwinTransformerV2(arch=dict(embed_dims=8, depths=depths, num_heads=[1, 1, 1, 1]))
    assert backbone_layer_depth(backbone) == backbone.get_layer_depth
    for name in ('backbone.patch_embed.proj.weight', 'backbone.layers.2.blocks.17.norm2.bias',
                 'backbone.layers.2.downsample.reduction.weight', 'backbone.norm3.weight', 'neck.weight'):
        assert backbone.get_layer_depth(name, 'backbone.') == swin_layer_depth(name, depths, 'backbone.')


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
def test_swin_v1_backbones_get_the_same_layer_ids(scope):
    """mmdet's / mmseg's Swin V1: stages.{i}.blocks.{j} and stages.{i}.downsample numbered as V2's layers,
    absolute_pos_embed with the patch embedding, output norms at the top; no decay on the bias tables."""
    model = TinyDetector(_v1_swin(scope))
    assert not hasattr(model.backbone, 'get_layer_depth')  # the fallback serves it
    fallback = backbone_layer_depth(model.backbone)
    assert isinstance(fallback, SwinV1LayerDepth) and fallback.stages == 'stages'
    assert fallback.depths == tuple(DEPTHS)
    assert fallback('backbone.stages.1.blocks.1.attn.w_msa.qkv.weight', 'backbone.') == (3, 7)
    by_name = _check_every_group(model, 'stages')
    assert {g['layer_id'] for g in by_name.values()} == set(range(7))  # every id of depths [1, 2, 1, 1] is used
    # spot checks of the table's corners, and that lr scales are the V2 model's for the same depths
    v2 = {n: g['lr_scale'] for n, g in _check_every_group(TinyDetector(), 'layers').items()}
    for v1_name, v2_name, scale in (
            ('backbone.patch_embed.projection.weight', 'backbone.patch_embed.proj.weight', DECAY ** 6),
            ('backbone.absolute_pos_embed', None, DECAY ** 6),
            ('backbone.stages.0.blocks.0.attn.w_msa.qkv.weight', 'backbone.layers.0.blocks.0.attn.qkv.weight',
             DECAY ** 5),
            ('backbone.stages.1.blocks.1.ffn.layers.0.0.weight', 'backbone.layers.1.blocks.1.mlp.fc1.weight',
             DECAY ** 3),
            ('backbone.stages.1.downsample.reduction.weight', 'backbone.layers.1.downsample.reduction.weight',
             DECAY ** 3),
            ('backbone.stages.3.blocks.0.norm2.weight', 'backbone.layers.3.blocks.0.norm2.weight', DECAY),
            ('backbone.norm3.weight', 'backbone.norm3.weight', 1.0),
            ('neck.weight', 'neck.weight', 1.0)):
        assert by_name[v1_name]['lr_scale'] == pytest.approx(scale), v1_name
        if v2_name is not None:
            assert v2[v2_name] == pytest.approx(scale), v2_name
    # weight decay: none on the position-bias tables, the absolute embedding and every LayerNorm
    tables = [n for n in by_name if n.endswith('relative_position_bias_table')]
    assert len(tables) == sum(DEPTHS)
    for name in tables + ['backbone.absolute_pos_embed', 'backbone.patch_embed.norm.weight',
                          'backbone.stages.0.blocks.0.norm1.weight', 'backbone.stages.0.downsample.norm.bias',
                          'backbone.norm0.weight']:
        assert by_name[name]['weight_decay'] == 0.0, name
    for name in ('backbone.stages.0.blocks.0.attn.w_msa.qkv.weight', 'backbone.stages.0.blocks.0.attn.w_msa.qkv.bias',
                 'backbone.stages.0.downsample.reduction.weight', 'backbone.patch_embed.projection.weight'):
        assert by_name[name]['weight_decay'] == WD, name


def test_layer_id_function_for_v1_names():
    depths = [2, 2, 18, 2]
    n = sum(depths) + 1
    assert _layer_id('backbone.absolute_pos_embed', depths, stages='stages') == 0
    assert _layer_id('backbone.stages.2.blocks.17.ffn.layers.1.weight', depths, stages='stages') == 22
    assert _layer_id('backbone.stages.2.downsample.norm.weight', depths, stages='stages') == 22
    assert _layer_id('backbone.stages.3.blocks.1.attn.w_msa.relative_position_bias_table', depths,
                     stages='stages') == 24
    # the stage attribute is the backbone's own: a V2 name is not read as V1 and the other way round
    assert _layer_id('backbone.layers.0.blocks.0.attn.qkv.weight', depths, stages='stages') == n


def test_unknown_backbone_is_refused_with_the_supported_list():
    class OtherBackbone(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(2, 2)])

    model = TinyDetector(OtherBackbone())
    with pytest.raises(ValueError, match=r'does not know the backbone .*OtherBackbone.*SwinTransformerV2'):
        _build(model)
    with pytest.raises(ValueError, match='default constructor'):
        _build(model)
    with pytest.raises(ValueError, match='get_layer_depth'):
        swin_v1_layer_depth(OtherBackbone())


def test_any_backbone_with_get_layer_depth_is_served():
    """The layer ids are the backbone's: a backbone that numbers its own layers needs no entry anywhere."""
    class TwoLayers(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3)
            self.body = nn.Conv2d(8, 8, 3)

        def get_layer_depth(self, param_name, prefix=''):
            num_layers = 3
            if not param_name.startswith(prefix):
                return num_layers - 1, num_layers
            return (0 if param_name[len(prefix):].startswith('stem') else 1), num_layers

    by_name = {g['param_name']: g for g in _build(TinyDetector(TwoLayers())).optimizer.param_groups}
    assert by_name['backbone.stem.weight']['layer_id'] == 0
    assert by_name['backbone.stem.weight']['lr'] == pytest.approx(BASE_LR * DECAY ** 2)
    assert by_name['backbone.body.bias']['lr'] == pytest.approx(BASE_LR * DECAY)
    assert by_name['neck.weight']['layer_id'] == 2 and by_name['neck.weight']['lr'] == pytest.approx(BASE_LR)


def test_subclass_of_a_known_backbone_is_accepted():
    class MySwinV2(SwinTransformerV2):
        pass

    model = TinyDetector(MySwinV2(arch=dict(embed_dims=8, depths=DEPTHS, num_heads=HEADS), window_size=4))
    _check_every_group(model, 'layers')


def test_mmpretrain_swin_numbers_its_layers_itself():
    """mmpretrain's Swin V1 has a get_layer_depth of its own: it is used, and gives this table's ids."""
    backbones = pytest.importorskip('mmpretrain.models.backbones')
    backbone = backbones.SwinTransformer(arch=dict(embed_dims=8, depths=DEPTHS, num_heads=HEADS), img_size=32,
                                         window_size=4, out_indices=(0, 1, 2, 3))
    assert backbone_layer_depth(backbone) == backbone.get_layer_depth
    _check_every_group(TinyDetector(backbone), 'stages')


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
