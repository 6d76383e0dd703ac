"""The detection workflow end to end on the synthetic COCO sample, as subprocesses of the real tools:
sample generation, tools/train.py, tools/test.py (weights_only loading, metrics JSON, dumps, drawings),
--resume, learning (AP gain over the untrained model), a 2-process CPU (gloo) dist_train.sh run,
tools/image_demo.py and tools/publish_model.py."""
import filecmp
import json
import os
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip('mmdet')

from conftest import DET_SAMPLE_CONFIG, ROOT, run_tool  # noqa: E402

TOOLS = os.path.join(ROOT, 'tools')
# trained (DET_TRAIN_EPOCHS epochs) minus untrained box AP must exceed this; measured 0.21 - 0.00
MIN_AP_GAIN = 0.1


def _py(tool, *args):
    return [sys.executable, os.path.join(TOOLS, tool), *map(str, args)]


# ------------------------------------------------------------------------------------------ sample data
def test_sample_annotations_are_exact(coco_sample):
    from pycocotools import mask as mask_utils
    from swin_dense.sample_data.coco import CLASSES
    for split, n_images in (('train', 240), ('val', 48)):
        with open(os.path.join(coco_sample, 'annotations', f'instances_{split}2017.json')) as f:
            coco = json.load(f)
        assert [c['name'] for c in coco['categories']] == list(CLASSES)
        assert len(coco['images']) == n_images
        images = {im['id']: im for im in coco['images']}
        per_image = {}
        for ann in coco['annotations']:
            im = images[ann['image_id']]
            m = mask_utils.decode(ann['segmentation']).astype(bool)
            assert m.shape == (im['height'], im['width'])
            ys, xs = np.nonzero(m)
            x, y, w, h = ann['bbox']
            assert (x, y, x + w, y + h) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            assert ann['area'] == m.sum() and ann['iscrowd'] == 0
            assert not (per_image.get(ann['image_id'], np.zeros_like(m)) & m).any()  # no overlaps
            per_image[ann['image_id']] = per_image.get(ann['image_id'], np.zeros_like(m)) | m
        assert set(per_image) == set(images)  # every image has objects
        for im in coco['images']:
            assert 128 <= im['height'] <= 160 and 128 <= im['width'] <= 160
            assert os.path.isfile(os.path.join(coco_sample, f'{split}2017', im['file_name']))


@pytest.mark.e2e
def test_make_sample_data_tool_is_deterministic(coco_sample, tmp_path):
    run_tool(_py('make_sample_data.py', '--out', tmp_path, '--task', 'coco'), timeout=120)
    out = tmp_path / 'coco'
    for sub in ('annotations', 'train2017', 'val2017'):
        names = sorted(os.listdir(os.path.join(coco_sample, sub)))
        assert sorted(os.listdir(out / sub)) == names
        match, mismatch, errors = filecmp.cmpfiles(os.path.join(coco_sample, sub), out / sub, names, shallow=False)
        assert not mismatch and not errors, (sub, mismatch[:3], errors[:3])


# ---------------------------------------------------------------------------------------- train / test
@pytest.mark.e2e
def test_train_writes_checkpoints_and_validates(det_train_run):
    assert os.path.isfile(det_train_run['checkpoint'])
    with open(os.path.join(det_train_run['work_dir'], 'last_checkpoint')) as f:
        assert f.read().strip().endswith(os.path.basename(det_train_run['checkpoint']))
    log = det_train_run['stdout']
    assert 'coco/bbox_mAP' in log and 'coco/segm_mAP' in log
    assert 'SwinV2LayerDecayOptimizerConstructor' not in log  # A1.2 gives COCO no layer-wise lr decay (docs/recipes.md)


@pytest.fixture(scope='module')
def det_test_run(det_train_run, tmp_path_factory):
    out = tmp_path_factory.mktemp('det_test')
    proc = run_tool(_py('test.py', DET_SAMPLE_CONFIG, det_train_run['checkpoint'], '--work-dir', out / 'work',
                        '--metrics-out', out / 'metrics.json', '--out', out / 'results.pkl',
                        '--show-dir', 'vis', '--cfg-options', f"data_root={det_train_run['data_root']}"))
    with open(out / 'metrics.json') as f:
        metrics = json.load(f)
    return dict(out=out, metrics=metrics, log=proc.stdout + proc.stderr)


@pytest.mark.e2e
def test_test_py_loads_checkpoint_and_writes_metrics(det_test_run):
    metrics, log = det_test_run['metrics'], det_test_run['log']
    for kind in ('bbox', 'segm'):
        for key in ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m'):
            assert 0.0 <= metrics[f'coco/{kind}_{key}'] <= 1.0
        assert metrics[f'coco/{kind}_mAP_l'] == -1.0  # the sample has no large (> 96^2 px) objects
    # the full COCO tables of both box and mask AP are printed
    assert log.count('Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]') >= 2
    assert 'Evaluating bbox' in log and 'Evaluating segm' in log
    assert 'Load checkpoint from' in log


@pytest.mark.e2e
def test_test_py_dumps_predictions_and_drawings(det_test_run):
    with open(det_test_run['out'] / 'results.pkl', 'rb') as f:
        results = pickle.load(f)  # noqa: S301  our own file
    assert len(results) == 48
    pred = results[0]['pred_instances']
    assert {'bboxes', 'scores', 'labels', 'masks'} <= set(pred)
    vis_root = det_test_run['out'] / 'work'
    drawn = [f for _, _, files in os.walk(vis_root) for f in files if f.endswith('.jpg')]
    assert len(drawn) == 48


@pytest.mark.e2e
def test_training_improves_box_ap(det_train_run, det_test_run, tmp_path):
    """Learning, not just running: the trained model beats the untrained one by a clear margin."""
    from mmengine.config import Config
    from mmengine.runner import Runner
    from swin_dense.cli import merge_cfg_options, setup_scope
    cfg = Config.fromfile(DET_SAMPLE_CONFIG)
    merge_cfg_options(cfg, {'data_root': det_train_run['data_root']})
    setup_scope(cfg)
    cfg.work_dir = str(tmp_path)
    runner = Runner.from_cfg(cfg)
    runner.model.init_weights()  # the same initialisation training starts from
    untrained = runner.test()['coco/bbox_mAP']
    trained = det_test_run['metrics']['coco/bbox_mAP']
    print(f'box AP untrained {untrained:.3f} -> trained ({det_train_run["epochs"]} epochs, '
          f'{det_train_run["seconds"]:.0f}s) {trained:.3f}')
    assert trained >= untrained + MIN_AP_GAIN, (untrained, trained)


@pytest.mark.e2e
def test_resume_continues_from_checkpoint(det_train_run, tmp_path):
    epochs = det_train_run['epochs']
    proc = run_tool(_py('train.py', DET_SAMPLE_CONFIG, '--work-dir', tmp_path, '--resume', det_train_run['checkpoint'],
                        '--cfg-options', f"data_root={det_train_run['data_root']}", f'train_cfg.max_epochs={epochs + 1}',
                        'train_cfg.val_begin=100', 'train_dataloader.dataset.indices=8',
                        'default_hooks.checkpoint.interval=1'))
    log = proc.stdout + proc.stderr
    assert f'resumed epoch: {epochs}' in log
    assert os.path.isfile(tmp_path / f'epoch_{epochs + 1}.pth')


# ------------------------------------------------------------------------------------------ distributed
@pytest.mark.e2e
def test_dist_train_two_cpu_processes(coco_sample, tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT, PORT=str(29500 + os.getpid() % 1000), OMP_NUM_THREADS='1',
               PYTHONWARNINGS='ignore', CUDA_VISIBLE_DEVICES='')
    cmd = ['bash', os.path.join(TOOLS, 'dist_train.sh'), DET_SAMPLE_CONFIG, '2', '--work-dir', str(tmp_path),
           '--cfg-options', f'data_root={coco_sample}', 'train_cfg.max_epochs=1', 'train_dataloader.dataset.indices=8',
           'val_dataloader.dataset.indices=4', 'default_hooks.checkpoint.interval=1']
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    assert 'initialised torch.distributed with gloo' in log
    assert 'Distributed training: True' in log and 'GPU number: 2' in log  # mmengine's env log: world size 2
    assert os.path.isfile(tmp_path / 'epoch_1.pth')
    assert 'coco/bbox_mAP' in log  # distributed validation gathered results on rank 0


# ------------------------------------------------------------------------------------------------ demo
@pytest.mark.e2e
def test_image_demo_draws_boxes_and_masks(det_train_run, tmp_path):
    import cv2
    img = os.path.join(det_train_run['data_root'], 'val2017', '000000100001.jpg')
    out = tmp_path / 'demo.png'
    proc = run_tool(_py('image_demo.py', img, DET_SAMPLE_CONFIG, det_train_run['checkpoint'], '--out-file', out,
                        '--device', 'cpu', '--score-thr', '0.05'), timeout=300)  # 1-epoch model: low scores
    kept = re.search(r'(\d+) instance\(s\) with score >= 0.05', proc.stdout)
    assert kept and int(kept.group(1)) > 0, proc.stdout
    drawn = cv2.imread(str(out))
    original = cv2.imread(img)
    assert drawn is not None and drawn.shape == original.shape
    assert np.abs(drawn.astype(int) - original.astype(int)).mean() > 0.5  # boxes and masks were drawn


# ---------------------------------------------------------------------------------------------- publish
@pytest.mark.e2e
def test_publish_model_strips_the_training_state_and_loads_without_swin_dense(det_train_run, tmp_path):
    """tools/publish_model.py reads the training checkpoint (which plain torch refuses: HistoryBuffer), keeps meta
    and state_dict, and writes OUT-<sha256[:8]>.pth that a process without swin_dense loads with weights_only."""
    import hashlib
    import torch
    proc = run_tool(_py('publish_model.py', det_train_run['checkpoint'], tmp_path / 'cascade_sample.pth'), timeout=300)
    published = re.search(r'published (\S+)', proc.stdout).group(1)
    assert re.fullmatch(re.escape(str(tmp_path / 'cascade_sample')) + r'-[0-9a-f]{8}\.pth', published), published
    with open(published, 'rb') as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert published.endswith(f'-{digest[:8]}.pth')
    assert os.listdir(tmp_path) == [os.path.basename(published)]  # no temporary file left
    for key in ('optimizer', 'param_schedulers', 'message_hub'):
        assert f"dropped '{key}'" in proc.stdout
    # a fresh interpreter with torch only (as mmdet's init_detector under torch >= 2.6): weights_only loads it
    code = ('import torch\n'
            f'ckpt = torch.load({published!r}, map_location="cpu", weights_only=True)\n'
            'print(sorted(ckpt), len(ckpt["state_dict"]), ckpt["meta"]["epoch"])\n')
    fresh = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert fresh.stdout.split()[:2] == ["['meta',", "'state_dict']"]
    ckpt = torch.load(published, map_location='cpu', weights_only=True)
    from swin_dense.engine.safe_load import load
    original = load(det_train_run['checkpoint'])
    assert ckpt['state_dict'].keys() == original['state_dict'].keys()
    assert all(torch.equal(v, original['state_dict'][k]) for k, v in ckpt['state_dict'].items())
    assert ckpt['meta']['dataset_meta']['classes'] == original['meta']['dataset_meta']['classes']


def test_publish_model_refuses_other_pickled_objects(tmp_path, capsys):
    """Never unsafe loading: a checkpoint with a Python object outside the allowlist is refused, nothing written."""
    import importlib.util
    import torch
    spec = importlib.util.spec_from_file_location('publish_model', os.path.join(TOOLS, 'publish_model.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    bad = tmp_path / 'bad.pth'
    torch.save({'state_dict': {'w': torch.ones(1)}, 'meta': {}, 'payload': _CallsOnLoad()}, bad)
    assert tool.main([str(bad), str(tmp_path / 'out.pth')]) == 2
    err = capsys.readouterr().err
    assert 'cannot publish' in err and 'Weights only load failed' in err, err
    assert os.listdir(tmp_path) == ['bad.pth']


class _CallsOnLoad:
    """Pickles as a call to os.getcwd (harmless if it ran, but it must not run)."""

    def __reduce__(self):
        return (os.getcwd, ())
