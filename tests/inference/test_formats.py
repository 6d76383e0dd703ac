"""swin_dense.inference.formats and the id rules of the batch tool: RLE masks, COCO results, label PNGs,
atomic writes."""
import json
import os

import numpy as np
import pytest
import torch

from swin_dense.inference.batch import image_ids
from swin_dense.inference.formats import (COCO_CATEGORY_IDS, atomic_write, atomic_write_json, coco_category_ids,
                                          coco_results, decode_label_png, det_instances, encode_masks, encode_png,
                                          named_instances, seg_label_map)
from swin_dense.inference.inputs import InputImage


def _det_sample(n=3, h=20, w=30):
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    inst = InstanceData()
    inst.bboxes = torch.tensor([[1.5, 2.0, 10.25, 12.0], [0, 0, 30, 20], [5, 5, 6, 6]], dtype=torch.float32)[:n]
    inst.scores = torch.tensor([0.9, 0.4, 0.1])[:n]
    inst.labels = torch.tensor([2, 0, 1])[:n]
    masks = torch.zeros(n, h, w, dtype=torch.bool)
    masks[0, 2:12, 1:10] = True
    masks[1] = True
    masks[2, 5, 5] = True
    inst.masks = masks
    sample = DetDataSample()
    sample.pred_instances = inst
    return sample


def test_rle_round_trip_with_str_counts():
    from pycocotools import mask as mask_utils
    rng = np.random.default_rng(0)
    masks = rng.random((4, 17, 23)) > 0.5
    rles = encode_masks(masks)
    assert len(rles) == 4 and all(isinstance(r['counts'], str) and r['size'] == [17, 23] for r in rles)
    json.dumps(rles)  # JSON-ready
    for m, r in zip(masks, rles):
        np.testing.assert_array_equal(mask_utils.decode(r).astype(bool), m)
    assert encode_masks(np.zeros((0, 5, 5), bool)) == []


def test_det_instances_threshold_and_names():
    inst = det_instances(_det_sample(), score_thr=0.3)
    assert [(i['label'], round(i['score'], 3)) for i in inst] == [(2, 0.9), (0, 0.4)]
    assert inst[0]['box'] == [1.5, 2.0, 10.25, 12.0]
    assert inst[0]['mask']['size'] == [20, 30]
    assert len(det_instances(_det_sample(), 0.0)) == 3
    named = named_instances(inst, ('rectangle', 'ellipse', 'triangle'))
    assert [(n['label'], n['label_id']) for n in named] == [('triangle', 2), ('rectangle', 0)]
    assert set(named[0]) == {'label', 'label_id', 'score', 'box', 'mask'}


def test_coco_results_as_mmdet_writes_them():
    inst = det_instances(_det_sample(), 0.0)
    res = coco_results(inst, image_id=7, cat_ids=[11, 12, 13])
    assert res[0]['image_id'] == 7 and res[0]['category_id'] == 13
    assert res[0]['bbox'] == [1.5, 2.0, 10.25 - 1.5, 10.0]
    assert res[0]['segmentation'] == inst[0]['mask']
    assert coco_category_ids(('a', 'b'), [{'id': 5, 'name': 'b'}, {'id': 9, 'name': 'a'}]) == [9, 5]
    assert coco_category_ids(('a', 'b')) == [1, 2]
    from mmdet.datasets import CocoDataset
    assert coco_category_ids(CocoDataset.METAINFO['classes']) == list(COCO_CATEGORY_IDS)
    with pytest.raises(ValueError, match='not among'):
        coco_category_ids(('a', 'zebra'), [{'id': 1, 'name': 'a'}])


def test_image_ids_from_names_annotations_or_order():
    nums = [InputImage(f'/d/{n}', n) for n in ('000000100002.jpg', 'x/000000000139.png')]
    assert image_ids(nums) == [100002, 139]
    words = [InputImage(f'/d/{n}', n) for n in ('cat.jpg', 'dog.jpg', '12.jpg')]
    assert image_ids(words) == [1, 2, 3]
    ann = [{'id': 40, 'file_name': 'dog.jpg'}, {'id': 41, 'file_name': 'cat.jpg'}]
    assert image_ids(words, ann) == [41, 40, 42]


def test_label_png_round_trip():
    from mmseg.structures import SegDataSample
    from mmengine.structures import PixelData
    sample = SegDataSample()
    sample.pred_sem_seg = PixelData(data=torch.tensor([[[0, 1, 4], [4, 3, 2]]]))
    label = seg_label_map(sample)
    assert label.dtype == np.uint8 and label.shape == (2, 3)
    np.testing.assert_array_equal(decode_label_png(encode_png(label)), label)
    sample.pred_sem_seg = PixelData(data=torch.tensor([[[0, 300], [149, 1000]]]))
    big = seg_label_map(sample)
    assert big.dtype == np.uint16
    np.testing.assert_array_equal(decode_label_png(encode_png(big)), big)


def test_atomic_write_leaves_complete_file_or_nothing(tmp_path, monkeypatch):
    target = tmp_path / 'sub' / 'x.json'
    atomic_write_json(str(target), {'a': 1})
    assert json.loads(target.read_text()) == {'a': 1}
    assert os.listdir(tmp_path / 'sub') == ['x.json']

    def broken_replace(src, dst):
        raise OSError('disk full')
    monkeypatch.setattr(os, 'replace', broken_replace)
    with pytest.raises(OSError):
        atomic_write(str(tmp_path / 'sub' / 'y.png'), b'12345')
    assert os.listdir(tmp_path / 'sub') == ['x.json']  # neither y.png nor a temporary file
    with pytest.raises(OSError):
        atomic_write_json(str(target), {'a': 2})
    assert json.loads(target.read_text()) == {'a': 1}  # the old complete file stays
