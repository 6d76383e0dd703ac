"""tools/export_onnx.py, then the exported graph through tools/infer.py and tools/serve.py (random
sample segmentor): the same label maps as with the PyTorch checkpoint, resuming, refusing inputs
outside the size policy image by image, and a clear exit for a corrupt file."""
import json
import os
import shutil
import sys

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.e2e

pytest.importorskip('onnxruntime')
pytest.importorskip('mmseg')

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'inference'))
from inference_helpers import DET_CONFIG, DET_FAST, SEG_CONFIG, coco_subset, py, random_checkpoint, run  # noqa: E402
from test_serve import Server, _label, b64  # noqa: E402

# logits agree within 4e-6 (tests/deploy); a label can flip only where the top two are that close
MIN_EQUAL_LABELS = 0.999


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp('export_tool')
    ckpt = random_checkpoint('seg', str(folder))
    out = str(folder / 'onnx')
    proc = run(py('export_onnx.py', SEG_CONFIG, ckpt, '--out', out))
    assert 'dynamic input size, both sides >= 4 px' in proc.stdout
    return ckpt, os.path.join(out, 'model.onnx')


@pytest.fixture(scope='module')
def val_images(ade_sample_root):
    return os.path.join(ade_sample_root, 'images', 'validation')


def _labels(out):
    folder = os.path.join(out, 'labels')
    return {n: cv2.imread(os.path.join(folder, n), cv2.IMREAD_UNCHANGED) for n in sorted(os.listdir(folder))}


def _assert_same_labels(a, b):
    assert a.shape == b.shape
    assert (a == b).mean() >= MIN_EQUAL_LABELS


def test_infer_runs_the_onnx_file_as_the_checkpoint_and_resumes(exported, val_images, tmp_path):
    ckpt, onnx = exported
    run(py('infer.py', SEG_CONFIG, ckpt, val_images, '--out', tmp_path / 'pth', '--no-progress'))
    run(py('infer.py', SEG_CONFIG, onnx, val_images, '--out', tmp_path / 'onnx', '--no-progress'))
    ref, got = _labels(tmp_path / 'pth'), _labels(tmp_path / 'onnx')
    assert ref.keys() == got.keys() and len(ref) == len(os.listdir(val_images))
    for name in ref:
        _assert_same_labels(ref[name], got[name])
    assert sorted(os.listdir(tmp_path / 'onnx' / 'overlays')) == sorted(os.listdir(tmp_path / 'pth' / 'overlays'))
    run(py('infer.py', SEG_CONFIG, onnx, val_images, '--out', tmp_path / 'onnx', '--no-progress'))
    summary = json.load(open(tmp_path / 'onnx' / 'summary.json'))
    assert summary['done_before'] == len(ref) and summary['done_now'] == 0


def test_infer_refuses_sizes_outside_the_policy_image_by_image(exported, val_images, tmp_path):
    ckpt, _ = exported
    run(py('export_onnx.py', SEG_CONFIG, ckpt, '--out', tmp_path / 'fixed', '--shape', '130', '130'))
    proc = run(py('infer.py', SEG_CONFIG, tmp_path / 'fixed' / 'model.onnx', val_images, '--out', tmp_path / 'out',
                  '--no-progress'), check=False)
    summary = json.load(open(tmp_path / 'out' / 'summary.json'))
    # the sample pipeline resizes to a short side of 128: no image comes out at 130 x 130
    assert proc.returncode == 1 and summary['done'] == 0  # nothing done
    assert len(summary['skipped']) == len(os.listdir(val_images))
    assert all('outside the exported graph\'s fixed input size 130x130' in s['reason'] for s in summary['skipped'])


def test_infer_stops_at_once_on_a_corrupt_onnx_file(exported, val_images, tmp_path):
    _, onnx = exported
    shutil.copytree(os.path.dirname(onnx), tmp_path / 'bad')
    (tmp_path / 'bad' / 'model.onnx').write_bytes(b'not a protobuf' * 100)
    proc = run(py('infer.py', SEG_CONFIG, tmp_path / 'bad' / 'model.onnx', val_images, '--out', tmp_path / 'out'),
               check=False)
    assert proc.returncode == 2
    assert 'is not an ONNX model ONNX Runtime can load' in proc.stderr and 're-export it' in proc.stderr


def test_serve_answers_with_the_onnx_file(exported, val_images, tmp_path):
    _, onnx = exported
    name = sorted(os.listdir(val_images))[0]
    run(py('infer.py', SEG_CONFIG, onnx, os.path.join(val_images, name), '--out', tmp_path, '--no-vis',
           '--no-progress'))
    ref = _labels(tmp_path)[name.replace('.jpg', '.png')]
    server = Server(SEG_CONFIG, onnx)
    try:
        status, meta = server.get('/metadata')
        assert status == 200 and meta['runtime'] == 'onnxruntime'
        status, body = server.score([b64(os.path.join(val_images, name))])
    finally:
        server.stop()
    assert status == 200, body
    np.testing.assert_array_equal(_label(body[0]), ref)


# ------------------------------------------------------------------------------------------- detection
# the detector's test_cfg is a constant of the graph, so export and runs get the same options
DET_OPTIONS = ['--cfg-options', *DET_FAST]
# fp32 with another op order: boxes and scores agree within 5e-5 (tests/deploy); 1e-3 is the bound
DET_TOL = 1e-3


@pytest.fixture(scope='module')
def det_exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp('export_tool_det')
    ckpt = random_checkpoint('det', str(folder))
    out = str(folder / 'onnx')
    proc = run(py('export_onnx.py', DET_CONFIG, ckpt, '--out', out, *DET_OPTIONS))
    assert '(detection, 3 classes, dynamic input size, both sides >= 4 px)' in proc.stdout
    return ckpt, os.path.join(out, 'model.onnx')


def _results_by_image(out):
    with open(os.path.join(out, 'results.json')) as f:
        results = json.load(f)
    by_image = {}
    for r in results:
        by_image.setdefault(r['image_id'], []).append(r)
    return by_image


def test_infer_writes_the_checkpoints_coco_results_with_the_onnx_file(det_exported, coco_sample, tmp_path):
    from pycocotools import mask as mask_utils
    ckpt, onnx = det_exported
    data = coco_subset(coco_sample, str(tmp_path / 'data'), 2)
    images = os.path.join(data, 'val2017')
    run(py('infer.py', DET_CONFIG, ckpt, images, '--out', tmp_path / 'pth', '--no-vis', '--no-progress', *DET_OPTIONS))
    run(py('infer.py', DET_CONFIG, onnx, images, '--out', tmp_path / 'onnx', '--no-vis', '--no-progress', *DET_OPTIONS))
    ref, got = _results_by_image(tmp_path / 'pth'), _results_by_image(tmp_path / 'onnx')
    assert len(ref) == 2 and ref.keys() == got.keys()
    for image_id, expected in ref.items():
        mine = got[image_id]
        assert len(mine) == len(expected) > 0
        for e in expected:  # the detection of the same class whose box is closest
            m = min((r for r in mine if r['category_id'] == e['category_id']),
                    key=lambda r: np.abs(np.subtract(r['bbox'], e['bbox'])).max())
            assert np.abs(np.subtract(m['bbox'], e['bbox'])).max() < DET_TOL
            assert abs(m['score'] - e['score']) < DET_TOL
            assert isinstance(m['segmentation']['counts'], str)
            a, b = mask_utils.decode(e['segmentation']), mask_utils.decode(m['segmentation'])
            # a pixel flips only where the pasted probability is within ~1e-6 of mask_thr_binary
            assert (a != b).sum() <= 0.01 * max(1, (a | b).sum())


def test_serve_answers_detections_with_the_onnx_file(det_exported, coco_sample, tmp_path):
    _, onnx = det_exported
    image = os.path.join(coco_sample, 'val2017', sorted(os.listdir(os.path.join(coco_sample, 'val2017')))[0])
    run(py('infer.py', DET_CONFIG, onnx, image, '--out', tmp_path, '--no-vis', '--no-progress', *DET_OPTIONS))
    with open(tmp_path / 'shards' / (os.path.splitext(os.path.basename(image))[0] + '.json')) as f:
        ref = json.load(f)['instances']
    server = Server(DET_CONFIG, onnx, '--score-thr', 0, *DET_OPTIONS)
    try:
        status, meta = server.get('/metadata')
        assert status == 200 and meta['runtime'] == 'onnxruntime' and meta['task'] == 'detection'
        status, body = server.score([b64(image)])
    finally:
        server.stop()
    assert status == 200, body
    (instances,) = body
    assert len(instances) == len(ref) > 0
    # the same graph on the same input in two processes: equal up to the float formatting of two JSON writers
    for got, exp in zip(instances, ref):
        assert got['label_id'] == exp['label'] and got['mask'] == exp['mask']
        assert abs(got['score'] - exp['score']) < 1e-6 and np.allclose(got['box'], exp['box'], atol=1e-4)
