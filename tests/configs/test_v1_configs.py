"""Swin V1 baseline configs: each loads and builds its model with mmdet's / mmseg's own V1
``SwinTransformer`` of the expected size, differs from its SwinV2 counterpart only in the backbone
(plus the pretrained path and the V1 names of the no-weight-decay keys), keeps the layer-decay
and no-decay recipe on V1 parameter names, and the V1 detection sample trains and tests through
tools/train.py and tools/test.py."""
import json
import math
import os
import sys
from typing import Any, Dict, NamedTuple, Tuple

import pytest
import torch

from conftest import ROOT, run_tool
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

from swin_dense.cli import merge_cfg_options, setup_scope

CONFIGS = os.path.join(ROOT, 'configs')
# no-weight-decay keys a V1 config adds to its V2 parent's list: V1's counterparts of cpb_mlp / logit_scale
V1_NO_DECAY_KEYS = ('relative_position_bias_table', 'absolute_pos_embed')


class Arch(NamedTuple):
    embed_dims: int
    depths: Tuple[int, ...]
    num_heads: Tuple[int, ...]
    window: int
    drop_path: float


class Pair(NamedTuple):
    v1: str  # path relative to configs/
    v2: str
    scope: str  # 'mmdet' or 'mmseg'
    path_var: str  # the top-level pretrained-path variable of both configs
    arch: Arch


TINY, SMALL = (2, 2, 6, 2), (2, 2, 18, 2)
HEADS_96, HEADS_128 = (3, 6, 12, 24), (4, 8, 16, 32)
PAIRS = [
    Pair('cascade_swin_t_coco.py', 'cascade_swinv2_t_coco.py', 'mmdet', 'pretrained', Arch(96, TINY, HEADS_96, 7, 0.2)),
    Pair('cascade_swin_s_coco.py', 'cascade_swinv2_s_coco.py', 'mmdet', 'pretrained',
         Arch(96, SMALL, HEADS_96, 7, 0.3)),
    Pair('cascade_swin_b_coco.py', 'cascade_swinv2_b_coco.py', 'mmdet', 'pretrained',
         Arch(128, SMALL, HEADS_128, 7, 0.3)),
    Pair('sample/cascade_swin_t_sample.py', 'sample/cascade_swinv2_t_sample.py', 'mmdet', 'pretrained',
         Arch(32, (1, 1, 2, 1), (1, 2, 4, 8), 8, 0.0)),
    Pair('upernet_swin_t_ade20k.py', 'upernet_swinv2_t_ade20k.py', 'mmseg', 'pretrained',
         Arch(96, TINY, HEADS_96, 7, 0.3)),
    Pair('upernet_swin_s_ade20k.py', 'upernet_swinv2_s_ade20k.py', 'mmseg', 'pretrained',
         Arch(96, SMALL, HEADS_96, 7, 0.3)),
    Pair('upernet_swin_b_ade20k.py', 'upernet_swinv2_b_ade20k.py', 'mmseg', 'pretrained',
         Arch(128, SMALL, HEADS_128, 7, 0.3)),
    Pair('sample/upernet_swin_t_sample.py', 'sample/upernet_swinv2_t_sample.py', 'mmseg', 'pretrained',
         Arch(32, (2, 2, 2, 2), (1, 2, 4, 8), 8, 0.1)),
]
SAMPLES = {'sample/cascade_swin_t_sample.py', 'sample/upernet_swin_t_sample.py'}


def _id(pair: Pair) -> str:
    return pair.v1


def _cfg(name: str, **options: Any) -> Config:
    """The config, with --cfg-options semantics (path variables propagate), its scope registered and default."""
    cfg = Config.fromfile(os.path.join(CONFIGS, name))  # imports swin_dense through custom_imports
    merge_cfg_options(cfg, options)
    setup_scope(cfg)
    init_default_scope(cfg.default_scope)
    return cfg


def _build(cfg: Config) -> torch.nn.Module:
    registry = __import__(f'{cfg.default_scope}.registry', fromlist=['MODELS']).MODELS
    torch.manual_seed(0)
    return revert_sync_batchnorm(registry.build(cfg.model))


def _flatten(node: Any, prefix: str = '') -> Dict[str, Any]:
    """{'a.b.0.c': leaf} for nested dicts and lists (tuples and other values are leaves)."""
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return {prefix: node}
    out: Dict[str, Any] = {}
    for key, value in items:
        out.update(_flatten(value, f'{prefix}.{key}' if prefix else str(key)))
    return out


@pytest.mark.parametrize('pair', PAIRS, ids=_id)
def test_v1_model_builds_with_the_expected_backbone(pair):
    pytest.importorskip(pair.scope)
    cfg = _cfg(pair.v1)
    assert cfg.default_scope == pair.scope
    bb_cfg = cfg.model.backbone
    assert bb_cfg.type == 'SwinTransformer'
    assert (bb_cfg.patch_norm, tuple(bb_cfg.out_indices), bb_cfg.with_cp) == (True, (0, 1, 2, 3), False)
    if pair.scope == 'mmdet':
        assert bb_cfg.convert_weights is False  # the converter already wrote mmdet's key layout
    else:
        assert 'convert_weights' not in bb_cfg  # mmseg's SwinTransformer has no such argument
    if pair.v1 in SAMPLES:
        assert bb_cfg.init_cfg is None
    else:
        assert bb_cfg.init_cfg == dict(type='Pretrained', checkpoint=cfg[pair.path_var])
        assert cfg[pair.path_var].startswith('checkpoints/swin_') and cfg[pair.path_var].endswith('_v1.pth')
    assert bb_cfg.drop_path_rate == pair.arch.drop_path

    model = _build(cfg)
    backbone = model.backbone
    expected_cls = __import__(f'{pair.scope}.models.backbones', fromlist=['SwinTransformer']).SwinTransformer
    assert type(backbone) is expected_cls
    arch = pair.arch
    assert backbone.num_features == [arch.embed_dims * 2 ** i for i in range(4)]
    assert tuple(len(stage.blocks) for stage in backbone.stages) == arch.depths
    assert tuple(stage.blocks[0].attn.w_msa.num_heads for stage in backbone.stages) == arch.num_heads
    assert {block.attn.window_size for stage in backbone.stages for block in stage.blocks} == {arch.window}
    heads_in = model.neck.in_channels if pair.scope == 'mmdet' else model.decode_head.in_channels
    assert list(heads_in) == backbone.num_features


@pytest.mark.parametrize('pair', PAIRS, ids=_id)
def test_v1_differs_from_its_v2_counterpart_only_in_the_backbone(pair):
    """Swapping V2 for V1 is a change of one config file: same detector / segmentor, data, schedule,
    optimizer and runtime; only model.backbone.*, the path variable and V1's no-decay keys differ."""
    pytest.importorskip(pair.scope)
    v1, v2 = _flatten(_cfg(pair.v1).to_dict()), _flatten(_cfg(pair.v2).to_dict())
    differing = {k for k in v1.keys() | v2.keys() if v1.get(k, KeyError) != v2.get(k, KeyError)}
    custom_keys = 'optim_wrapper.paramwise_cfg.custom_keys.'
    added_no_decay = {f'{custom_keys}{key}.decay_mult' for key in V1_NO_DECAY_KEYS}
    outside = {k for k in differing if not k.startswith('model.backbone.') and k != pair.path_var} - added_no_decay
    assert not outside, f'{pair.v1} differs from {pair.v2} outside the backbone: {sorted(outside)}'
    assert 'model.backbone.type' in differing  # SwinTransformerV2 -> SwinTransformer
    for key in added_no_decay:  # added to, not replacing, the parent's list
        assert v1[key] == 0.0 and key not in v2
    assert {k for k in v2 if k.startswith(custom_keys)} <= set(v1)


@pytest.mark.parametrize('pair', [p for p in PAIRS if p.v1 not in SAMPLES], ids=_id)
def test_pretrained_variable_propagates(pair):
    """`--cfg-options pretrained=...` works as for the V2 configs (detection and segmentation alike)."""
    pytest.importorskip(pair.scope)
    cfg = _cfg(pair.v1, **{pair.path_var: '/ckpts/converted_v1.pth'})
    assert cfg.model.backbone.init_cfg.checkpoint == '/ckpts/converted_v1.pth'


def test_detection_v1_optimizer_keeps_the_v2_recipe():
    """Layer decay 0.9 over the V1-T backbone's own depths, no decay on its bias tables and norms."""
    pytest.importorskip('mmdet')
    cfg = _cfg('cascade_swin_t_coco.py')
    model = _build(cfg)
    groups = {g['param_name']: g for g in build_optim_wrapper(model, cfg.optim_wrapper).optimizer.param_groups}
    n = 2 + 2 + 6 + 2 + 1
    assert groups['backbone.patch_embed.projection.weight']['lr'] == pytest.approx(1e-4 * 0.9 ** n)
    # stage 2, block 5: layer sum([2, 2]) + 5 + 1 = 10
    assert groups['backbone.stages.2.blocks.5.attn.w_msa.qkv.weight']['lr'] == pytest.approx(1e-4 * 0.9 ** (n - 10))
    assert groups['backbone.stages.2.downsample.reduction.weight']['layer_id'] == 10
    assert groups['backbone.norm3.weight']['lr'] == pytest.approx(1e-4)
    assert groups['roi_head.bbox_head.0.fc_cls.weight']['lr'] == pytest.approx(1e-4)
    for name, group in groups.items():
        if 'relative_position_bias_table' in name or '.norm' in name:
            assert group['weight_decay'] == 0.0, name
    assert groups['backbone.stages.0.blocks.0.attn.w_msa.qkv.weight']['weight_decay'] == 0.05


def test_segmentation_v1_optimizer_keeps_the_v2_recipe():
    pytest.importorskip('mmseg')
    cfg = _cfg('upernet_swin_t_ade20k.py')
    model = _build(cfg)
    groups = build_optim_wrapper(model, cfg.optim_wrapper).optimizer.param_groups
    decay = {name: g['weight_decay'] for g in groups for name, p in model.named_parameters() if p is g['params'][0]}
    tables = [n for n in decay if n.endswith('relative_position_bias_table')]
    assert len(tables) == 12 and all(decay[n] == 0.0 for n in tables)
    assert decay['backbone.stages.0.blocks.0.norm1.weight'] == decay['backbone.norm3.bias'] == 0.0
    assert decay['backbone.stages.0.blocks.0.attn.w_msa.qkv.weight'] == 0.01


def test_v1_segmentation_sample_forward_odd_size():
    """The V1 UPerNet sample runs an image that is not a window multiple (mmseg's V1 pads)."""
    pytest.importorskip('mmseg')
    model = _build(_cfg('sample/upernet_swin_t_sample.py')).eval()
    img = torch.randn(1, 3, 72, 88)
    metas = [dict(img_shape=(72, 88), ori_shape=(72, 88), pad_shape=(72, 88))]
    with torch.no_grad():
        logits = model.encode_decode(img, metas)
    assert logits.shape == (1, 5, 72, 88) and torch.isfinite(logits).all()


@pytest.mark.e2e
def test_v1_detection_sample_trains_and_tests_through_the_tools(coco_sample, tmp_path):
    """tools/train.py (4 iterations on 16 images) then tools/test.py (8 images) on the V1 sample config: the
    V1 backbone goes through the layer-decay constructor, training, checkpointing and COCO evaluation."""
    pytest.importorskip('mmdet')
    config = os.path.join(CONFIGS, 'sample', 'cascade_swin_t_sample.py')
    tools = os.path.join(ROOT, 'tools')
    train = run_tool([
        sys.executable, os.path.join(tools, 'train.py'), config, '--work-dir', str(tmp_path / 'train'),
        '--cfg-options', f'data_root={coco_sample}', 'train_cfg.max_epochs=1', 'train_cfg.val_begin=2',
        'train_dataloader.dataset.indices=16', 'default_hooks.checkpoint.interval=1',
        'default_hooks.logger.interval=2', 'param_scheduler.0.end=4'], timeout=300)
    log = train.stdout + train.stderr
    assert 'SwinV2LayerDecayOptimizerConstructor: backbone mmdet.models.backbones.swin.SwinTransformer' in log
    checkpoint = tmp_path / 'train' / 'epoch_1.pth'
    assert checkpoint.is_file()
    metrics_out = tmp_path / 'metrics.json'
    run_tool([sys.executable, os.path.join(tools, 'test.py'), config, str(checkpoint),
              '--work-dir', str(tmp_path / 'test'), '--metrics-out', str(metrics_out),
              '--cfg-options', f'data_root={coco_sample}', 'test_dataloader.dataset.indices=8',
              # after 4 iterations no class score may pass the default 0.05; keep the top 20 boxes regardless
              'model.test_cfg.rcnn.score_thr=0.0'], timeout=300)
    with open(metrics_out) as f:
        metrics = json.load(f)
    for kind in ('bbox', 'segm'):
        for key in ('mAP', 'mAP_50', 'mAP_75'):
            value = metrics[f'coco/{kind}_{key}']
            assert math.isfinite(value) and -1.0 <= value <= 1.0, (kind, key, value)
