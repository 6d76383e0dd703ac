"""tools/infer.py as a subprocess, on the synthetic samples, with randomly initialised (seed 0) checkpoints:

* detection: results.json evaluated with pycocotools gives tools/test.py's box and mask AP, and the
  same predictions, image for image; a run killed with SIGKILL and started again ends with the
  outputs of an uninterrupted run;
* segmentation: the label PNGs give tools/test.py's mIoU and its predictions;
* corrupt / empty / missing images are reported by name and skipped; an empty INPUT and a wrong
  config / checkpoint pair fail at once.
"""
import filecmp
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.e2e

pytest.importorskip('mmdet')
pytest.importorskip('mmseg')

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'inference'))
from inference_helpers import (DET_CONFIG, DET_FAST, ROOT, SEG_CONFIG, coco_subset, py,  # noqa: E402
                               random_checkpoint, run, tool_env)

N_DET = 4  # val images of the COCO sample used here (the cascade model is the slow part on a CPU)
DET_BATCH = 2  # tools/test.py's batch size is set to the same, so the batches (and their padding) match


@pytest.fixture(scope='module')
def ckpts(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp('infer_ckpts'))
    return dict(det=random_checkpoint('det', folder), seg=random_checkpoint('seg', folder))


@pytest.fixture(scope='module')
def det_data(coco_sample, tmp_path_factory):
    return coco_subset(coco_sample, str(tmp_path_factory.mktemp('coco_subset')), N_DET)


def _det_infer_cmd(ckpt, data_root, out):
    return py('infer.py', DET_CONFIG, ckpt, os.path.join(data_root, 'val2017'), '--out', out, '--batch-size',
              DET_BATCH, '--ann-file', os.path.join(data_root, 'annotations', 'instances_val2017.json'),
              '--cfg-options', f'data_root={data_root}', *DET_FAST)


@pytest.fixture(scope='module')
def det_infer(ckpts, det_data, tmp_path_factory):
    out = str(tmp_path_factory.mktemp('det_infer') / 'out')
    proc = run(_det_infer_cmd(ckpts['det'], det_data, out))
    return dict(out=out, log=proc.stdout + proc.stderr)


@pytest.fixture(scope='module')
def det_test_py(ckpts, det_data, tmp_path_factory):
    out = tmp_path_factory.mktemp('det_test_py')
    run(py('test.py', DET_CONFIG, ckpts['det'], '--work-dir', out / 'work', '--metrics-out', out / 'metrics.json',
           '--out', out / 'results.pkl', '--cfg-options', f'data_root={det_data}',
           f'test_dataloader.batch_size={DET_BATCH}', *DET_FAST))
    with open(out / 'metrics.json') as f:
        metrics = json.load(f)
    with open(out / 'results.pkl', 'rb') as f:
        results = pickle.load(f)  # noqa: S301  written by tools/test.py in this test
    return dict(metrics=metrics, results=results)


def _coco_eval(ann_file, results, iou_type):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    gt = COCO(ann_file)
    if iou_type == 'segm':  # as mmdet's CocoMetric: mask areas, not box areas
        results = [{k: v for k, v in r.items() if k != 'bbox'} for r in results]
    dt = gt.loadRes(results)
    ev = COCOeval(gt, dt, iou_type)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return ev.stats


# ------------------------------------------------------------------------------------------- detection
def test_det_outputs_and_summary(det_infer, det_data):
    out, log = det_infer['out'], det_infer['log']
    names = sorted(os.listdir(os.path.join(det_data, 'val2017')))
    assert sorted(os.listdir(os.path.join(out, 'vis'))) == [n.replace('.jpg', '.png') for n in names]
    for name in os.listdir(os.path.join(out, 'vis')):
        img = cv2.imread(os.path.join(out, 'vis', name))
        src = cv2.imread(os.path.join(det_data, 'val2017', name.replace('.png', '.jpg')))
        assert img.shape == src.shape
    with open(os.path.join(out, 'mapping.json')) as f:
        mapping = json.load(f)
    with open(os.path.join(det_data, 'annotations', 'instances_val2017.json')) as f:
        ann = json.load(f)
    assert [(im['id'], im['file_name']) for im in mapping['images']] == \
        [(im['id'], im['file_name']) for im in sorted(ann['images'], key=lambda x: x['file_name'])]
    assert mapping['categories'] == [{'id': c['id'], 'name': c['name']} for c in ann['categories']]
    with open(os.path.join(out, 'summary.json')) as f:
        summary = json.load(f)
    assert summary['images'] == summary['done'] == summary['done_now'] == N_DET and summary['skipped'] == []
    assert f'{N_DET} images: {N_DET} done' in log and 'images/s' in log
    assert 'img/s' in log or 's/img' in log  # the progress bar's rate


def _test_py_coco_results(results, cat_ids):
    """tools/test.py's dumped predictions as COCO results (as mmdet's CocoMetric converts them)."""
    out = []
    for res in results:
        pred = res['pred_instances']
        masks = pred.get('masks', [None] * len(pred['scores']))
        for box, score, label, mask in zip(pred['bboxes'].tolist(), pred['scores'].tolist(), pred['labels'].tolist(),
                                           masks):
            entry = dict(image_id=res['img_id'], category_id=cat_ids[label], score=score,
                         bbox=[box[0], box[1], box[2] - box[0], box[3] - box[1]])
            if mask is not None:
                entry['segmentation'] = dict(size=mask['size'], counts=mask['counts'].decode()
                                             if isinstance(mask['counts'], bytes) else mask['counts'])
            out.append(entry)
    return out


def _pseudo_ground_truth(ann_file, results, path, per_image=3, shift=2.0):
    """A ground truth on which the untrained model scores a non-trivial AP: per image, tools/test.py's
    best `per_image` detections (category = predicted label + 1, as in the sample), shifted by `shift` px
    (their masks likewise), so that the AP is neither 0 nor 1 and moves with any change of a box or a score."""
    from pycocotools import mask as mask_utils
    with open(ann_file) as f:
        ann = json.load(f)
    anns = []
    for res in results:
        pred = res['pred_instances']
        order = np.argsort(-pred['scores'].numpy(), kind='stable')[:per_image]
        for j in order:
            x1, y1, x2, y2 = pred['bboxes'][j].tolist()
            m = mask_utils.decode(pred['masks'][j])
            m = np.roll(m, int(shift), axis=1)
            rle = mask_utils.encode(np.asfortranarray(m))
            anns.append(dict(id=len(anns) + 1, image_id=res['img_id'], category_id=int(pred['labels'][j]) + 1,
                             bbox=[x1 + shift, y1, x2 - x1, y2 - y1], area=float((x2 - x1) * (y2 - y1)), iscrowd=0,
                             segmentation=dict(size=rle['size'], counts=rle['counts'].decode())))
    with open(path, 'w') as f:
        json.dump(dict(ann, annotations=anns), f)
    return path


def test_det_ap_equals_test_py(det_infer, det_test_py, det_data, tmp_path):
    with open(os.path.join(det_infer['out'], 'results.json')) as f:
        results = json.load(f)
    assert results and {'image_id', 'category_id', 'bbox', 'score', 'segmentation'} <= set(results[0])
    assert isinstance(results[0]['segmentation']['counts'], str)
    # against the sample's val annotations: equal to the AP tools/test.py reports
    ann_file = os.path.join(det_data, 'annotations', 'instances_val2017.json')
    box = _coco_eval(ann_file, results, 'bbox')
    segm = _coco_eval(ann_file, results, 'segm')
    metrics = det_test_py['metrics']
    # tools/test.py logs AP rounded to 3 decimals (mmdet's CocoMetric), so equal APs differ by up to 5e-4
    assert abs(box[0] - metrics['coco/bbox_mAP']) <= 1e-3, (box[0], metrics)
    assert abs(box[1] - metrics['coco/bbox_mAP_50']) <= 1e-3
    assert abs(segm[0] - metrics['coco/segm_mAP']) <= 1e-3, (segm[0], metrics)
    # an untrained model scores ~0 there, so also against a ground truth it does hit
    pseudo = _pseudo_ground_truth(ann_file, det_test_py['results'], str(tmp_path / 'pseudo_gt.json'))
    theirs = _test_py_coco_results(det_test_py['results'], cat_ids={0: 1, 1: 2, 2: 3})
    for iou_type in ('bbox', 'segm'):
        mine_ap = _coco_eval(pseudo, results, iou_type)[0]
        their_ap = _coco_eval(pseudo, theirs, iou_type)[0]
        if iou_type == 'bbox':  # (the untrained mask head's masks are mostly empty: low mask AP)
            assert 0.05 < their_ap < 0.95, their_ap
        # both from pycocotools on the same predictions; 1e-3 covers the JSON round trip of scores and boxes
        assert abs(mine_ap - their_ap) <= 1e-3, (iou_type, mine_ap, their_ap)


def test_det_predictions_equal_test_py(det_infer, det_test_py):
    """Not only the AP: every box and score of every image equals tools/test.py's."""
    by_id = {}
    with open(os.path.join(det_infer['out'], 'results.json')) as f:
        for r in json.load(f):
            by_id.setdefault(r['image_id'], []).append(r)
    assert len(det_test_py['results']) == N_DET
    for res in det_test_py['results']:
        pred = res['pred_instances']
        mine = by_id[res['img_id']]
        assert len(mine) == len(pred['scores'])
        # the same model and pipeline in two processes: scores agree to fp32 rounding of values <= 1
        np.testing.assert_allclose([r['score'] for r in mine], pred['scores'].numpy(), rtol=0, atol=1e-6)
        # results.json stores xywh (x2 - x1 in fp64 of fp32 corners): back to xyxy within 1e-3 px, far below 1 px
        xyxy = np.array([[x, y, x + w, y + h] for x, y, w, h in (r['bbox'] for r in mine)])
        np.testing.assert_allclose(xyxy, pred['bboxes'].numpy(), rtol=0, atol=1e-3)
        assert [r['category_id'] for r in mine] == [int(v) + 1 for v in pred['labels']]


def _count(folder, suffix):
    return len([n for n in os.listdir(folder) if n.endswith(suffix)]) if os.path.isdir(folder) else 0


def test_killed_run_continues_to_the_same_outputs(det_infer, ckpts, det_data, tmp_path):
    out = str(tmp_path / 'out')
    cmd = _det_infer_cmd(ckpts['det'], det_data, out)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=tool_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    shards = os.path.join(out, 'shards')
    deadline = time.time() + 240
    try:
        while _count(shards, '.json') < DET_BATCH and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    done_before = _count(shards, '.json')
    assert 0 < done_before < N_DET, 'the run was not stopped midway'
    assert not os.path.exists(os.path.join(out, 'results.json'))
    # what a crash can leave: stray temporary files, a picture without its shard; none counts as done
    open(os.path.join(shards, '.000000100006.json.999-0123abcd.partial'), 'w').write('{"half": ')
    missing = sorted(set(os.listdir(os.path.join(det_data, 'val2017'))) -
                     {n.replace('.json', '.jpg') for n in os.listdir(shards) if not n.startswith('.')})
    os.makedirs(os.path.join(out, 'vis'), exist_ok=True)
    open(os.path.join(out, 'vis', missing[0].replace('.jpg', '.png')), 'wb').close()

    again = run(cmd)
    log = again.stdout + again.stderr
    assert f'{done_before} of {N_DET} images already done' in log
    assert f'{N_DET} images: {N_DET} done ({N_DET - done_before} now, {done_before} from an earlier run)' in log
    ref = det_infer['out']
    for name in ('results.json', 'mapping.json'):
        assert filecmp.cmp(os.path.join(ref, name), os.path.join(out, name), shallow=False), name
    names = sorted(os.listdir(os.path.join(ref, 'vis')))
    assert sorted(os.listdir(os.path.join(out, 'vis'))) == names
    assert filecmp.cmpfiles(os.path.join(ref, 'vis'), os.path.join(out, 'vis'), names, shallow=False)[0] == names
    leftovers = [n for _, _, files in os.walk(out) for n in files if n.endswith('.partial')]
    assert leftovers == []



def test_other_run_in_the_same_out_is_refused(det_infer, ckpts, det_data):
    cmd = _det_infer_cmd(ckpts['seg'], det_data, det_infer['out'])
    proc = run(cmd, check=False)
    assert proc.returncode == 2
    assert 'holds outputs of another run (the checkpoint differ' in proc.stderr


# ---------------------------------------------------------------------------------------- segmentation
@pytest.fixture(scope='module')
def seg_runs(ckpts, ade_sample_root, tmp_path_factory):
    base = tmp_path_factory.mktemp('seg_runs')
    out = str(base / 'infer')
    proc = run(py('infer.py', SEG_CONFIG, ckpts['seg'], os.path.join(ade_sample_root, 'images', 'validation'),
                  '--out', out, '--batch-size', 4, '--no-progress'))
    run(py('test.py', SEG_CONFIG, ckpts['seg'], '--work-dir', base / 'work', '--metrics-out', base / 'metrics.json',
           '--out', base / 'results.pkl', '--cfg-options', f'data_root={ade_sample_root}'))
    with open(base / 'metrics.json') as f:
        metrics = json.load(f)
    with open(base / 'results.pkl', 'rb') as f:
        results = pickle.load(f)  # noqa: S301  written by tools/test.py in this test
    return dict(out=out, log=proc.stdout + proc.stderr, metrics=metrics, results=results)


def test_seg_label_pngs_give_test_py_miou(seg_runs, ade_sample_root):
    out = seg_runs['out']
    gt_dir = os.path.join(ade_sample_root, 'annotations', 'validation')
    names = sorted(os.listdir(gt_dir))
    assert sorted(os.listdir(os.path.join(out, 'labels'))) == names
    assert sorted(os.listdir(os.path.join(out, 'overlays'))) == names
    n = 5
    inter, union = np.zeros(n), np.zeros(n)
    for name in names:
        pred = cv2.imread(os.path.join(out, 'labels', name), cv2.IMREAD_UNCHANGED)
        gt = cv2.imread(os.path.join(gt_dir, name), cv2.IMREAD_UNCHANGED).astype(np.int64)
        assert pred.shape == gt.shape and pred.dtype == np.uint8 and pred.max() < n
        gt = np.where(gt == 0, 255, gt - 1)  # reduce_zero_label, as the config
        valid = gt != 255
        for c in range(n):
            p, g = (pred == c) & valid, (gt == c) & valid
            inter[c] += (p & g).sum()
            union[c] += (p | g).sum()
    with np.errstate(invalid='ignore', divide='ignore'):
        miou = float(np.nanmean(inter / np.where(union > 0, union, np.nan))) * 100
    expected = seg_runs['metrics']['mIoU']
    assert abs(round(miou, 2) - expected) <= 0.011, (miou, expected)
    assert 0 < miou
    # and pixel for pixel the predictions of tools/test.py
    for res in seg_runs['results']:
        name = os.path.basename(res['seg_map_path'])
        pred = cv2.imread(os.path.join(out, 'labels', name), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(pred, res['pred_sem_seg']['data'][0].numpy())


def test_seg_mapping(seg_runs):
    with open(os.path.join(seg_runs['out'], 'mapping.json')) as f:
        mapping = json.load(f)
    assert mapping['classes'] == ['wall', 'building', 'sky', 'floor', 'tree']
    assert len(mapping['images']) == 10 and mapping['images'][0]['label_png'].startswith('labels/')


# ---------------------------------------------------------------------------------------- bad inputs
def test_bad_images_are_skipped_and_listed(ckpts, ade_sample_root, tmp_path):
    src = os.path.join(ade_sample_root, 'images', 'validation')
    folder = tmp_path / 'mixed'
    (folder / 'sub').mkdir(parents=True)
    good = sorted(os.listdir(src))[:2]
    shutil.copy(os.path.join(src, good[0]), folder / 'a_good.jpg')
    shutil.copy(os.path.join(src, good[1]), folder / 'sub' / 'z_good.jpg')
    (folder / 'empty.jpg').write_bytes(b'')
    (folder / 'noise.png').write_bytes(os.urandom(500))
    data = open(os.path.join(src, good[0]), 'rb').read()
    (folder / 'cut.jpg').write_bytes(data[:len(data) // 2])
    lst = tmp_path / 'list.txt'
    lst.write_text('\n'.join(['mixed/a_good.jpg', 'mixed/empty.jpg', 'mixed/gone.jpg', 'mixed/noise.png',
                              'mixed/cut.jpg', 'mixed/sub/z_good.jpg']) + '\n')
    out = str(tmp_path / 'out')
    proc = run(py('infer.py', SEG_CONFIG, ckpts['seg'], lst, '--out', out, '--no-progress'))
    log = proc.stdout + proc.stderr
    assert '6 images: 2 done (2 now, 0 from an earlier run), 4 skipped' in log
    for name, why in (('empty.jpg', 'the file is empty (0 bytes)'), ('gone.jpg', 'file not found'),
                      ('noise.png', 'not an image'), ('cut.jpg', 'JPEG data is truncated')):
        assert f'{os.path.join(str(tmp_path), "mixed", name)}: {why}' in log, name
    assert sorted(os.listdir(os.path.join(out, 'labels'))) == ['a_good.png', 'sub']
    with open(os.path.join(out, 'summary.json')) as f:
        summary = json.load(f)
    assert len(summary['skipped']) == 4 and summary['done'] == 2


def test_empty_input_fails_at_once(ckpts, tmp_path):
    (tmp_path / 'nothing').mkdir()
    (tmp_path / 'nothing' / 'readme.txt').write_text('no images here')
    t0 = time.time()
    proc = run(py('infer.py', SEG_CONFIG, ckpts['seg'], tmp_path / 'nothing', '--out', tmp_path / 'out'),
               check=False)
    assert proc.returncode == 2
    assert 'error: no images found in folder' in proc.stderr
    assert time.time() - t0 < 60
    assert not (tmp_path / 'out').exists()


def test_wrong_config_checkpoint_pair_fails_at_once(ckpts, ade_sample_root, tmp_path):
    proc = run(py('infer.py', DET_CONFIG, ckpts['seg'], os.path.join(ade_sample_root, 'images', 'validation'),
                  '--out', tmp_path / 'out'), check=False)
    assert proc.returncode == 2
    assert f"error: checkpoint '{ckpts['seg']}' does not match config" in proc.stderr
    assert 'weights are missing from it' in proc.stderr
    assert not (tmp_path / "out").exists()


def test_checkpoint_by_url_and_unknown_source(ckpts, ade_sample_root, tmp_path):
    """The checkpoint argument takes every source (docs/checkpoints.md, "Sources"): a URL is downloaded into
    $SWIN_DENSE_CHECKPOINTS and gives the local file's labels; a name that is no source fails at once."""
    import functools
    import http.server
    import threading
    images = tmp_path / 'images'
    images.mkdir()
    first = sorted(os.listdir(os.path.join(ade_sample_root, 'images', 'validation')))[0]
    shutil.copy(os.path.join(ade_sample_root, 'images', 'validation', first), images / first)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=os.path.dirname(ckpts['seg']))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f'http://127.0.0.1:{server.server_address[1]}/{os.path.basename(ckpts["seg"])}'
    env = dict(tool_env(), SWIN_DENSE_CHECKPOINTS=str(tmp_path / 'cache'))
    try:
        for source, out in ((url, 'by_url'), (ckpts['seg'], 'by_path')):
            proc = subprocess.run(py('infer.py', SEG_CONFIG, source, images, '--out', tmp_path / out, '--no-progress'),
                                  cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
            assert proc.returncode == 0, proc.stderr[-3000:]
    finally:
        server.shutdown()
    assert os.listdir(tmp_path / 'cache') == [os.path.basename(ckpts['seg'])]
    label = os.path.splitext(first)[0] + '.png'
    assert filecmp.cmp(tmp_path / 'by_url' / 'labels' / label, tmp_path / 'by_path' / 'labels' / label, shallow=False)
    proc = run(py('infer.py', SEG_CONFIG, 'swinv2_tiny_no_such_model', images, '--out', tmp_path / 'bad'), check=False)
    assert proc.returncode == 2
    assert "error: checkpoint 'swinv2_tiny_no_such_model' does not exist" in proc.stderr
    assert not (tmp_path / 'bad').exists()
