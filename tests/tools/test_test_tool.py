"""tools/test.py as mmdet's and mmseg's users know it: --tta for both tasks, mmseg's --out DIR, and
the refusal of a checkpoint that does not fit the config.

The checkpoints are the untrained sample models (built here, seed 0): what is checked is that the
options run and write what they promise, not accuracy. Each run tests 4 validation images.
"""
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

from swin_dense.cli import setup_scope
from swin_dense.sample_data.ade import make_ade_sample
from swin_dense.sample_data.coco import make_coco_sample

ROOT = Path(__file__).resolve().parents[2]
SEG = 'configs/sample/upernet_swinv2_t_sample.py'
DET = 'configs/sample/htcpp_swinv2_t_sample.py'
FOUR_IMAGES = 'test_dataloader.dataset.indices=4'


def _untrained_checkpoint(config: str, path: Path) -> str:
    cfg = Config.fromfile(str(ROOT / config))
    setup_scope(cfg)
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    torch.save({'state_dict': MODELS.build(cfg.model).state_dict(), 'meta': {}}, path)
    return str(path)


def _test_tool(tmp_path: Path, config: str, checkpoint: str, data_root: str, *args: str):
    env = dict(os.environ, OMP_NUM_THREADS='1')  # the machine is shared; see docs/detection.md "Threads"
    return subprocess.run(
        [sys.executable, 'tools/test.py', config, checkpoint, '--work-dir', str(tmp_path / 'work'),
         '--cfg-options', f'data_root={data_root}', FOUR_IMAGES, *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('data')
    make_ade_sample(str(root / 'ade'))
    make_coco_sample(str(root / 'coco'))
    return root


def test_seg_tta_writes_png_predictions(tmp_path, data):
    checkpoint = _untrained_checkpoint(SEG, tmp_path / 'seg.pth')
    out = tmp_path / 'pngs'
    run = _test_tool(tmp_path, SEG, checkpoint, f'{data}/ade', '--tta', '--out', str(out))
    assert run.returncode == 0, run.stderr[-3000:]
    pngs = sorted(out.glob('*.png'))
    assert len(pngs) == 4, pngs


def test_det_tta_merges_masks_of_flipped_views(tmp_path, data):
    checkpoint = _untrained_checkpoint(DET, tmp_path / 'det.pth')
    out = tmp_path / 'results.pkl'
    run = _test_tool(tmp_path, DET, checkpoint, f'{data}/coco/', '--tta', '--out', str(out))
    assert run.returncode == 0, run.stderr[-3000:]
    with open(out, 'rb') as f:
        results = pickle.load(f)
    assert len(results) == 4
    # mmdet's DetTTAModel refuses masks; the merged results carry one mask per kept box
    instances = results[0]['pred_instances']
    assert len(instances['masks']) == len(instances['bboxes']) > 0


def test_refuses_a_checkpoint_of_another_model(tmp_path, data):
    checkpoint = _untrained_checkpoint(DET, tmp_path / 'det.pth')
    run = _test_tool(tmp_path, SEG, checkpoint, f'{data}/ade')
    assert run.returncode != 0
    message = run.stdout + run.stderr
    assert 'does not match config' in message and 'decode_head' in message and 'roi_head' in message


def test_unknown_checkpoint_source_is_one_clear_error(tmp_path, data):
    run = _test_tool(tmp_path, SEG, 'swinv2_no_such_model', f'{data}/ade')
    assert run.returncode != 0
    assert "error: checkpoint 'swinv2_no_such_model' does not exist" in run.stderr
    assert 'zoo name' in run.stderr and 'Traceback' not in run.stderr
