"""The SwinV2-G configs: they load, their backbone builds (parameters on the meta device) with
mmpretrain's giant parameter count, and they carry the paper's sizes and the memory savers (FSDP,
activation checkpointing, sequential attention)."""
import os

import pytest
from mmengine.config import Config

from swin_dense import SwinTransformerV2
from swin_dense.benchmark.meta import empty_parameters, parameter_count

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
GIANT_PARAMETERS = 2_997_850_848  # mmpretrain 1.2.0's arch 'giant' (tests/models/backbones/test_giant.py)


@pytest.mark.parametrize('name, window, neck_key', [('htcpp_swinv2_g_coco.py', 32, 'neck'),
                                                    ('upernet_swinv2_g_ade20k.py', 40, 'decode_head')])
def test_giant_config_builds_on_meta(name, window, neck_key):
    cfg = Config.fromfile(os.path.join(ROOT, 'configs', name))
    backbone = dict(cfg.model.backbone)
    assert backbone.pop('type') == 'SwinTransformerV2' and backbone.pop('init_cfg')['type'] == 'Pretrained'
    assert backbone['arch'] == 'giant' and backbone['window_size'] == window
    assert backbone['with_cp'] and list(backbone['attn_chunk_size']) == [32, 32, 0, 0]
    # FSDP on mmengine's FlexibleRunner, one unit per SwinV2 block; the L config's AdamW, unsharded by ZeRO
    assert cfg.runner_type == 'FlexibleRunner' and cfg.strategy.type == 'ConsolidatedFSDPStrategy'
    assert cfg.strategy.model_wrapper == dict(use_orig_params=True, auto_wrap_policy='swin_block_auto_wrap_policy')
    assert cfg.optim_wrapper.optimizer.type == 'AdamW' and 'custom_hooks' not in cfg
    assert list(cfg.model[neck_key].in_channels) == [512, 1024, 2048, 4096]
    with empty_parameters():
        model = SwinTransformerV2(**backbone)
    assert parameter_count(model) == GIANT_PARAMETERS
    assert [stage.blocks[0].attn.chunk_size for stage in model.layers] == [32, 32, 0, 0]
