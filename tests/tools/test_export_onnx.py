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
from inference_helpers import SEG_CONFIG, py, random_checkpoint, run  # noqa: E402
from test_serve import Server, _label, b64  # noqa: E402

# the sample pipeline resizes to a short side of 128, below the dynamic graph's 257 px
LARGE = ['--cfg-options', 'test_dataloader.dataset.pipeline.1.scale=(1024,300)']
# logits agree within 4e-6 (tests/deploy); a label can flip only where the top two are that close
MIN_EQUAL_LABELS = 0.999


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp('export_tool')
    ckpt = random_checkpoint('seg', str(folder))
    out = str(folder / 'onnx')
    proc = run(py('export_onnx.py', SEG_CONFIG, ckpt, '--out', out))
    assert 'dynamic input size, both sides >= 257 px' in proc.stdout
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
    run(py('infer.py', SEG_CONFIG, ckpt, val_images, '--out', tmp_path / 'pth', '--no-progress', *LARGE))
    run(py('infer.py', SEG_CONFIG, onnx, val_images, '--out', tmp_path / 'onnx', '--no-progress', *LARGE))
    ref, got = _labels(tmp_path / 'pth'), _labels(tmp_path / 'onnx')
    assert ref.keys() == got.keys() and len(ref) == len(os.listdir(val_images))
    for name in ref:
        _assert_same_labels(ref[name], got[name])
    assert sorted(os.listdir(tmp_path / 'onnx' / 'overlays')) == sorted(os.listdir(tmp_path / 'pth' / 'overlays'))
    run(py('infer.py', SEG_CONFIG, onnx, val_images, '--out', tmp_path / 'onnx', '--no-progress', *LARGE))
    summary = json.load(open(tmp_path / 'onnx' / 'summary.json'))
    assert summary['done_before'] == len(ref) and summary['done_now'] == 0


def test_infer_refuses_sizes_outside_the_policy_image_by_image(exported, val_images, tmp_path):
    _, onnx = exported
    proc = run(py('infer.py', SEG_CONFIG, onnx, val_images, '--out', tmp_path, '--no-progress'), check=False)
    assert proc.returncode == 1  # nothing done: every image is below the graph's smallest side
    summary = json.load(open(tmp_path / 'summary.json'))
    assert summary['done'] == 0 and len(summary['skipped']) == len(os.listdir(val_images))
    assert all('outside the exported graph' in s['reason'] for s in summary['skipped'])


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
           '--no-progress', *LARGE))
    ref = _labels(tmp_path)[name.replace('.jpg', '.png')]
    server = Server(SEG_CONFIG, onnx, *LARGE)
    try:
        status, meta = server.get('/metadata')
        assert status == 200 and meta['runtime'] == 'onnxruntime'
        status, body = server.score([b64(os.path.join(val_images, name))])
    finally:
        server.stop()
    assert status == 200, body
    np.testing.assert_array_equal(_label(body[0]), ref)
