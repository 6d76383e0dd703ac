"""configs/_base_/swin_dense_runtime.py: every config imports swin_dense's runtime and runs with the reliability
hooks from that one file (not a copy per task), and every config names its backbone checkpoint ``pretrained``."""
import ast
import glob
import os

import pytest
from mmengine.config import Config

from swin_dense.cli import merge_cfg_options

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = os.path.join(ROOT, 'configs')
RUNTIME_BASE = os.path.join(CONFIGS, '_base_', 'swin_dense_runtime.py')
# the configs that inherit mmdet's / mmseg's bases directly; every other runnable config inherits one of them
TASK_BASES = [os.path.join(CONFIGS, 'cascade_swinv2_t_coco.py'), os.path.join(CONFIGS, 'upernet_swinv2_t_ade20k.py')]
# configs/deploy/ holds deployment settings (ONNX / TensorRT shapes, docs/deploy.md), not models to train or test
RUNNABLE = sorted(p for p in glob.glob(os.path.join(CONFIGS, '**', '*.py'), recursive=True)
                  if not os.path.basename(p).startswith('_') and f'{os.sep}_base_{os.sep}' not in p
                  and f'{os.sep}deploy{os.sep}' not in p)
RUNTIME_IMPORTS = dict(imports=['swin_dense', 'swin_dense.runtime', 'swin_dense.models.det_tta'],
                       allow_failed_imports=False)


def _name(path):
    return os.path.relpath(path, CONFIGS)


def _assigned_names(path):
    with open(path) as f:
        tree = ast.parse(f.read())
    return {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)}


def test_config_files_are_all_there():
    """Every config file name users call stays (configs/cascade_swinv2_l_coco.py is how users call the project)."""
    names = {_name(p) for p in RUNNABLE}
    assert {f'cascade_swinv2_{s}_coco.py' for s in 'tsbl'} | {f'upernet_swinv2_{s}_ade20k.py' for s in 'tsbl'} <= names
    assert {f'cascade_swin_{s}_coco.py' for s in 'tsb'} | {f'upernet_swin_{s}_ade20k.py' for s in 'tsb'} <= names
    assert {'memory/cascade_swinv2_l_coco_zero.py', 'memory/upernet_swinv2_l_ade20k_zero.py',
            'sample/cascade_swinv2_t_sample.py', 'sample/upernet_swinv2_t_sample.py'} <= names


def test_hooks_and_imports_live_in_one_base():
    """The task configs inherit the runtime base and spell neither the hooks nor the imports themselves."""
    base = Config.fromfile(RUNTIME_BASE, import_custom_modules=False)
    assert base.custom_imports == RUNTIME_IMPORTS
    assert base.reliability_hooks == dict(
        checkpoint=dict(type='AtomicCheckpointHook', backend_args=dict(backend='atomic_local')),
        rng_state=dict(type='RNGStateHook'))
    for path in TASK_BASES:
        with open(path) as f:
            text = f.read()
        assert "'./_base_/swin_dense_runtime.py'" in text, _name(path)
        for copied in ('AtomicCheckpointHook', 'RNGStateHook', 'atomic_local'):
            assert copied not in text, (_name(path), copied)
    for path in RUNNABLE:
        assert 'custom_imports' not in _assigned_names(path), _name(path)


@pytest.mark.parametrize('path', RUNNABLE, ids=_name)
def test_every_config_runs_with_the_runtime_and_names_its_checkpoint_pretrained(path):
    cfg = Config.fromfile(path)
    assert cfg.custom_imports == RUNTIME_IMPORTS
    hooks = cfg.default_hooks
    assert hooks.checkpoint.type == 'AtomicCheckpointHook'
    assert hooks.checkpoint.backend_args == dict(backend='atomic_local')
    assert hooks.rng_state == dict(type='RNGStateHook')
    # one name for the backbone checkpoint, in detection and segmentation configs alike, and init_cfg loads it
    assert 'checkpoint_file' not in cfg
    init_cfg = cfg.model.backbone.get('init_cfg')
    if 'sample' in path:  # the samples train from scratch and set their own short checkpoint policy
        assert init_cfg is None
        return
    assert init_cfg == dict(type='Pretrained', checkpoint=cfg.pretrained)
    if cfg.default_scope == 'mmdet':  # the COCO checkpoint policy of the detection config
        assert (hooks.checkpoint.interval, hooks.checkpoint.max_keep_ckpts, hooks.checkpoint.save_best,
                hooks.checkpoint.rule) == (1, 3, 'coco/bbox_mAP', 'greater')
    else:  # the schedule's checkpoint interval is kept: a tenth of it, as mmseg's schedule_160k.py / schedule_40k.py
        assert (hooks.checkpoint.by_epoch, hooks.checkpoint.interval) == (False, cfg.train_cfg.max_iters // 10)
        assert cfg.train_cfg.max_iters in (160000, 40000)


def test_former_segmentation_variable_name_still_works():
    """`--cfg-options checkpoint_file=PATH` (the segmentation configs' former name) sets `pretrained`."""
    cfg = Config.fromfile(TASK_BASES[1])
    merge_cfg_options(cfg, {'checkpoint_file': '/ckpts/swinv2_t.pth'})
    assert cfg.pretrained == '/ckpts/swinv2_t.pth' and 'checkpoint_file' not in cfg
    assert cfg.model.backbone.init_cfg.checkpoint == '/ckpts/swinv2_t.pth'
