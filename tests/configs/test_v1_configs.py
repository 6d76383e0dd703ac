"""Swin V1 baseline configs: each loads and builds its model with mmdet's / mmseg's own V1
``SwinTransformer`` of the expected size and differs from its SwinV2 counterpart only in the backbone
(plus the pretrained path and the V1 names of the no-weight-decay keys) and, for ADE20K, in the
optimizer, which is the published V1 one (docs/recipes.md); the optimizers keep the no-decay list on V1
parameter names, and the V1 detection sample trains and tests through tools/train.py and tools/test.py."""
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
from swin_dense.engine import safe_load

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
    v2: str  # the SwinV2 config whose data, heads and schedule it shares
    scope: str  # 'mmdet' or 'mmseg'
    path_var: str  # the top-level pretrained-path variable of both configs
    arch: Arch
    # the keys besides model.backbone.* it may change: the published V1 optimizer of the ADE20K
    # baselines, and the heads' input channels where the V2 config is of another width
    own: Tuple[str, ...] = ()


TINY, SMALL = (2, 2, 6, 2), (2, 2, 18, 2)
HEADS_96, HEADS_128 = (3, 6, 12, 24), (4, 8, 16, 32)
PAIRS = [
    Pair('cascade_swin_t_coco.py', 'cascade_swinv2_t_coco.py', 'mmdet', 'pretrained', Arch(96, TINY, HEADS_96, 7, 0.2)),
    Pair('cascade_swin_s_coco.py', 'cascade_swinv2_s_coco.py', 'mmdet', 'pretrained',
         Arch(96, SMALL, HEADS_96, 7, 0.2)),
    Pair('cascade_swin_b_coco.py', 'cascade_swinv2_b_coco.py', 'mmdet', 'pretrained',
         Arch(128, SMALL, HEADS_128, 7, 0.3)),
    Pair('sample/cascade_swin_t_sample.py', 'sample/cascade_swinv2_t_sample.py', 'mmdet', 'pretrained',
         Arch(32, (1, 1, 2, 1), (1, 2, 4, 8), 8, 0.0)),
    # the V1 ADE20K recipe is 512 px, 160k iterations for every size: the V2-T config's data and schedule
    # (V2-B follows the paper's 640 px A2.1 recipe instead)
    Pair('upernet_swin_t_ade20k.py', 'upernet_swinv2_t_ade20k.py', 'mmseg', 'pretrained',
         Arch(96, TINY, HEADS_96, 7, 0.3), own=('optim_wrapper.',)),
    Pair('upernet_swin_s_ade20k.py', 'upernet_swinv2_s_ade20k.py', 'mmseg', 'pretrained',
         Arch(96, SMALL, HEADS_96, 7, 0.3), own=('optim_wrapper.',)),
    Pair('upernet_swin_b_ade20k.py', 'upernet_swinv2_t_ade20k.py', 'mmseg', 'pretrained',
         Arch(128, SMALL, HEADS_128, 7, 0.3),
         own=('optim_wrapper.', 'model.decode_head.in_channels.', 'model.auxiliary_head.in_channels')),
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
    """Swapping V2 for V1 is a change of one config file: same detector / segmentor, data, schedule and
    runtime; only model.backbone.*, the path variable, V1's no-decay keys and the pair's own keys differ."""
    pytest.importorskip(pair.scope)
    v1, v2 = _flatten(_cfg(pair.v1).to_dict()), _flatten(_cfg(pair.v2).to_dict())
    differing = {k for k in v1.keys() | v2.keys() if v1.get(k, KeyError) != v2.get(k, KeyError)}
    custom_keys = 'optim_wrapper.paramwise_cfg.custom_keys.'
    added_no_decay = {f'{custom_keys}{key}.decay_mult' for key in V1_NO_DECAY_KEYS}
    outside = {k for k in differing if not k.startswith(('model.backbone.',) + pair.own) and k != pair.path_var}
    assert not outside - added_no_decay, f'{pair.v1} differs from {pair.v2} outside the backbone: {sorted(outside)}'
    assert 'model.backbone.type' in differing  # SwinTransformerV2 -> SwinTransformer
    for key in added_no_decay:
        assert v1[key] == 0.0 and key not in v2
    if 'optim_wrapper.' not in pair.own:  # added to, not replacing, the parent's list
        assert {k for k in v2 if k.startswith(custom_keys)} <= set(v1)


@pytest.mark.parametrize('pair', [p for p in PAIRS if p.v1 not in SAMPLES], ids=_id)
def test_pretrained_variable_propagates(pair):
    """`--cfg-options pretrained=...` works as for the V2 configs (detection and segmentation alike)."""
    pytest.importorskip(pair.scope)
    cfg = _cfg(pair.v1, **{pair.path_var: '/ckpts/converted_v1.pth'})
    assert cfg.model.backbone.init_cfg.checkpoint == '/ckpts/converted_v1.pth'


def _groups_by_name(model: torch.nn.Module, cfg: Config) -> Dict[str, dict]:
    """{parameter name: its optimizer param group} under the config's optimizer constructor."""
    names = {id(p): n for n, p in model.named_parameters()}
    groups = build_optim_wrapper(model, cfg.optim_wrapper).optimizer.param_groups
    return {names[id(p)]: g for g in groups for p in g['params']}


def test_detection_v1_optimizer_is_the_published_recipe():
    """One lr for every layer (the official V1 Cascade configs have no layer decay), no weight decay on the
    V1 bias tables and norms, 0.05 elsewhere."""
    pytest.importorskip('mmdet')
    cfg = _cfg('cascade_swin_t_coco.py')
    groups = _groups_by_name(_build(cfg), cfg)
    assert {g['lr'] for g in groups.values()} == {cfg.optim_wrapper.optimizer.lr}
    for name, group in groups.items():
        if 'relative_position_bias_table' in name or '.norm' in name:
            assert group['weight_decay'] == 0.0, name
    assert groups['backbone.stages.0.blocks.0.attn.w_msa.qkv.weight']['weight_decay'] == 0.05


def test_segmentation_v1_optimizer_is_the_published_recipe():
    """The official V1 UPerNet optimizer: one lr for every layer, weight decay 0.01, none on bias tables and norms."""
    pytest.importorskip('mmseg')
    cfg = _cfg('upernet_swin_t_ade20k.py')
    assert 'constructor' not in cfg.optim_wrapper
    groups = _groups_by_name(_build(cfg), cfg)
    assert {g['lr'] for g in groups.values()} == {cfg.optim_wrapper.optimizer.lr}
    decay = {name: g['weight_decay'] for name, g in groups.items()}
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
    V1 backbone goes through training, checkpointing and COCO evaluation."""
    pytest.importorskip('mmdet')
    config = os.path.join(CONFIGS, 'sample', 'cascade_swin_t_sample.py')
    tools = os.path.join(ROOT, 'tools')
    run_tool([
        sys.executable, os.path.join(tools, 'train.py'), config, '--work-dir', str(tmp_path / 'train'),
        '--cfg-options', f'data_root={coco_sample}', 'train_cfg.max_epochs=1', 'train_cfg.val_begin=2',
        'train_dataloader.dataset.indices=16', 'default_hooks.checkpoint.interval=1',
        'default_hooks.logger.interval=2', 'param_scheduler.0.end=4'], timeout=300)
    checkpoint = tmp_path / 'train' / 'epoch_1.pth'
    saved = safe_load.load(str(checkpoint))
    assert saved['meta']['iter'] == 4  # 16 images, batch 4
    assert 'backbone.stages.0.blocks.0.attn.w_msa.relative_position_bias_table' in saved['state_dict']  # mmdet's V1
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
