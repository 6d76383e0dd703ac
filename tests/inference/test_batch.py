"""swin_dense.inference.batch.run_batch in this process, on the segmentation sample model (random
weights): what one hostile or unlucky input must not do to a batch run.

* special files (a FIFO, a link to /dev/zero) and images over the pixel limit are skipped and listed,
  and the run ends;
* a failure while drawing one image (a 1x1 image's overlay) skips that image only;
* inputs whose names give the same output name (x.png and x.png.jpg) get outputs of their own;
* a resumed run notices that an input is not the file its outputs were made from;
* an --out that cannot be written is refused before the model is loaded.
"""
import json
import os
import shutil
import sys
import threading
import time

import cv2
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from inference_helpers import SEG_CONFIG, random_checkpoint  # noqa: E402

from swin_dense.inference.batch import BatchError, run_batch  # noqa: E402

#: A run over a few sample-sized images takes seconds; one that blocks on a FIFO or reads /dev/zero never ends.
RUN_DEADLINE_S = 240


@pytest.fixture(scope='module')
def seg_ckpt(tmp_path_factory):
    return random_checkpoint('seg', str(tmp_path_factory.mktemp('batch_ckpts')))


@pytest.fixture(scope='module')
def ade_images(ade_sample_root):
    folder = os.path.join(ade_sample_root, 'images', 'validation')
    return [os.path.join(folder, n) for n in sorted(os.listdir(folder))]


def _run(ckpt, input_arg, out, **kwargs):
    """run_batch in a thread, failing the test (instead of hanging it) past RUN_DEADLINE_S."""
    result = {}

    def target():
        try:
            result['summary'] = run_batch(SEG_CONFIG, ckpt, str(input_arg), str(out), progress=False,
                                          log=lambda msg: result.setdefault('log', []).append(msg), **kwargs)
        except BaseException as e:  # noqa: BLE001  re-raised in the test's thread
            result['error'] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(RUN_DEADLINE_S)
    assert not thread.is_alive(), f'run_batch on {input_arg} did not end within {RUN_DEADLINE_S} s'
    if 'error' in result:
        raise result['error']
    return result['summary'], '\n'.join(result.get('log', []))


def test_special_files_and_large_images_are_skipped_and_listed(seg_ckpt, tmp_path):
    folder = tmp_path / 'in'
    folder.mkdir()
    cv2.imwrite(str(folder / 'a_good.png'), np.full((60, 80, 3), 90, np.uint8))
    os.symlink('/dev/zero', folder / 'zero.png')
    os.mkfifo(folder / 'pipe.jpg')
    big = np.zeros((120, 100, 3), np.uint8)
    cv2.imwrite(str(folder / 'wide.png'), big)
    summary, log = _run(seg_ckpt, folder, tmp_path / 'out', max_pixels=12000 - 1, vis=False)
    reasons = {os.path.basename(p): r for p, r in summary.skipped}
    assert summary.done == 1 and set(reasons) == {'zero.png', 'pipe.jpg', 'wide.png'}
    assert 'character device' in reasons['zero.png'] and 'FIFO' in reasons['pipe.jpg']
    assert '100x120 = 12000 pixels, more than the limit of 11999' in reasons['wide.png']
    assert f'{folder / "pipe.jpg"}: not a regular file but a FIFO' in log
    with open(tmp_path / 'out' / 'summary.json') as f:
        assert len(json.load(f)['skipped']) == 3


def test_a_failure_while_drawing_one_image_skips_only_that_image(seg_ckpt, ade_images, tmp_path):
    folder = tmp_path / 'in'
    folder.mkdir()
    cv2.imwrite(str(folder / 'a_tiny.png'), np.full((1, 1, 3), 200, np.uint8))  # mmseg's overlay drawing fails on it
    shutil.copy(ade_images[0], folder / 'b_good.jpg')
    summary, log = _run(seg_ckpt, folder, tmp_path / 'out')
    assert summary.done == 1 and [os.path.basename(p) for p, _ in summary.skipped] == ['a_tiny.png']
    assert 'writing its outputs failed' in summary.skipped[0][1]
    assert os.path.isfile(tmp_path / 'out' / 'overlays' / 'b_good.png')
    assert not os.path.exists(tmp_path / 'out' / 'labels' / 'a_tiny.png')  # not marked done: a re-run tries it again
    again, _ = _run(seg_ckpt, folder, tmp_path / 'out')
    assert again.done_before == 1 and len(again.skipped) == 1


def test_colliding_names_get_outputs_of_their_own(seg_ckpt, tmp_path):
    folder = tmp_path / 'in'
    folder.mkdir()
    sizes = {'x.jpg': (40, 50), 'x.png': (48, 64), 'x.png.jpg': (56, 72)}  # each image its own size
    for name, (h, w) in sizes.items():
        cv2.imwrite(str(folder / name), np.random.default_rng(h).integers(0, 255, (h, w, 3), dtype=np.uint8))
    summary, _ = _run(seg_ckpt, folder, tmp_path / 'out', vis=False)
    assert summary.done == 3
    with open(tmp_path / 'out' / 'mapping.json') as f:
        entries = json.load(f)['images']
    assert len({e['label_png'] for e in entries}) == 3
    for e in entries:
        label = cv2.imread(str(tmp_path / 'out' / e['label_png']), cv2.IMREAD_UNCHANGED)
        assert label.shape == sizes[e['file_name']], e


def test_resume_notices_that_an_input_is_another_file(seg_ckpt, ade_images, tmp_path):
    first, second = tmp_path / 'first', tmp_path / 'second'
    for folder, sources in ((first, ade_images[:2]), (second, ade_images[2:4])):
        folder.mkdir()
        for name, src in zip(('a.jpg', 'b.jpg'), sources):
            shutil.copy(src, folder / name)
    out = tmp_path / 'out'
    _run(seg_ckpt, first, out, vis=False)
    summary, log = _run(seg_ckpt, second, out, vis=False)  # same names, other images
    assert summary.done_before == 0 and summary.done_now == 2
    assert '2 images have outputs' in log and 'computing them again' in log
    fresh, _ = _run(seg_ckpt, second, tmp_path / 'fresh', vis=False)
    for name in ('a.png', 'b.png'):
        np.testing.assert_array_equal(cv2.imread(str(out / 'labels' / name), cv2.IMREAD_UNCHANGED),
                                      cv2.imread(str(tmp_path / 'fresh' / 'labels' / name), cv2.IMREAD_UNCHANGED))
    unchanged, _ = _run(seg_ckpt, second, out, vis=False)
    assert unchanged.done_before == 2 and unchanged.done_now == 0
    time.sleep(0.01)
    os.utime(second / 'b.jpg')  # touched: its modification time is newer than its outputs' record
    touched, _ = _run(seg_ckpt, second, out, vis=False)
    assert touched.done_before == 1 and touched.done_now == 1


def test_unwritable_out_is_refused_before_the_model_loads(seg_ckpt, ade_images, tmp_path, monkeypatch):
    import swin_dense.inference.loading as loading_module

    def must_not_load(*args, **kwargs):
        raise AssertionError('the model was loaded before --out was checked')

    monkeypatch.setattr(loading_module, 'load_predictor', must_not_load)
    # /sys refuses new entries even to root (sysfs); a file where a folder should be refuses them to anyone
    blocker = tmp_path / 'a_file'
    blocker.write_text('x')
    for out, message in (('/sys/swin_dense_out', 'is not writable'), (str(blocker / 'out'), 'is a file, not a folder')):
        with pytest.raises(BatchError, match=message):
            run_batch(SEG_CONFIG, seg_ckpt, ade_images[0], out, progress=False, log=lambda msg: None)
    assert not os.path.exists('/sys/swin_dense_out')
