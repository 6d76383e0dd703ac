"""swin_dense.inference.predictor: checkpoints are checked against the config before anything runs,
class names come from the right place, and bucketed batches give the results of single images."""
import glob
import os
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from inference_helpers import DET_CONFIG, SEG_CONFIG, random_checkpoint  # noqa: E402

from swin_dense.inference.predictor import CheckpointMismatchError, Predictor, PredictorError  # noqa: E402


@pytest.fixture(scope='module')
def ckpt_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp('inference_ckpts'))


@pytest.fixture(scope='module')
def seg_ckpt(ckpt_dir):
    return random_checkpoint('seg', ckpt_dir)


@pytest.fixture(scope='module')
def seg_predictor(seg_ckpt):
    return Predictor(SEG_CONFIG, seg_ckpt)


def test_classes_and_description(seg_predictor):
    assert seg_predictor.task == 'seg'
    assert seg_predictor.classes == ('wall', 'building', 'sky', 'floor', 'tree')
    assert seg_predictor.classes_source == 'checkpoint meta'
    info = seg_predictor.describe()
    assert info['task'] == 'segmentation' and info['backbone'] == 'SwinTransformerV2'
    assert info['model'] == 'EncoderDecoder' and len(info['palette']) == 5


def test_classes_from_config_without_checkpoint_meta(seg_ckpt, tmp_path):
    state = torch.load(seg_ckpt, weights_only=True)['state_dict']
    bare = str(tmp_path / 'bare.pth')
    torch.save(state, bare)  # a plain state dict, no meta
    pred = Predictor(SEG_CONFIG, bare)
    assert pred.classes == ('wall', 'building', 'sky', 'floor', 'tree')
    assert pred.classes_source == 'config metainfo'


def test_wrong_pair_fails_with_a_clear_message(seg_ckpt, ckpt_dir, tmp_path):
    det_ckpt = random_checkpoint('det', ckpt_dir)
    with pytest.raises(CheckpointMismatchError, match='does not match config') as info:
        Predictor(SEG_CONFIG, det_ckpt)
    msg = str(info.value)
    assert 'weights are missing from it' in msg
    assert 'The checkpoint has the parts backbone, neck, roi_head, rpn_head; the model has auxiliary_head, ' \
           'backbone, decode_head' in msg

    ckpt = torch.load(seg_ckpt, weights_only=True)
    ckpt['state_dict']['decode_head.conv_seg.weight'] = torch.zeros(7, 64, 1, 1)  # 7 classes, not 5
    other = str(tmp_path / 'seven_classes.pth')
    torch.save(ckpt, other)
    with pytest.raises(CheckpointMismatchError) as info:
        Predictor(SEG_CONFIG, other)
    assert 'decode_head.conv_seg.weight: checkpoint [7, 64, 1, 1] vs model [5, 64, 1, 1]' in str(info.value)


class _Custom:
    pass


class _RunsCode:
    """Unpickled, it would run a shell command (torch's safe loader refuses it)."""

    def __reduce__(self):
        return os.system, ('echo pwned',)


def test_unreadable_or_unsafe_checkpoints(tmp_path, seg_ckpt):
    text = tmp_path / 'notes.pth'
    text.write_text('not a checkpoint')
    with pytest.raises(PredictorError, match='not a (readable )?PyTorch checkpoint'):
        Predictor(SEG_CONFIG, str(text))
    unsafe = str(tmp_path / 'unsafe.pth')
    torch.save({'state_dict': {}, 'meta': {'x': _Custom()}}, unsafe)
    with pytest.raises(PredictorError, match='holds a Python object of type .*_Custom, which '
                                             r'torch.load\(weights_only=True\) refuses'):
        Predictor(SEG_CONFIG, unsafe)
    payload = str(tmp_path / 'payload.pth')
    torch.save({'state_dict': {}, 'meta': {'x': _RunsCode()}}, payload)
    # torch 2.14 words it "unsupported GLOBAL posix.system whose module posix is blocked"
    with pytest.raises(PredictorError, match=f'holds a Python object of type {os.system.__module__}.system'):
        Predictor(SEG_CONFIG, payload)
    with pytest.raises(PredictorError, match='not found'):
        Predictor(SEG_CONFIG, str(tmp_path / 'missing.pth'))
    with pytest.raises(PredictorError, match='not found'):
        Predictor(str(tmp_path / 'missing.py'), seg_ckpt)
    if not torch.cuda.is_available():
        with pytest.raises(PredictorError, match='CUDA is not available'):
            Predictor(SEG_CONFIG, seg_ckpt, device='cuda')


def test_bucketed_batches_equal_single_images(seg_predictor, ade_sample_root):
    files = sorted(glob.glob(os.path.join(ade_sample_root, 'images', 'validation', '*.jpg')))[:6]
    datas = [seg_predictor.prepare(seg_predictor.read(f)) for f in files]
    singles = [seg_predictor.predict([d])[0] for d in datas]
    together = seg_predictor.predict(datas, bucketed=True)
    for s, t in zip(singles, together):
        a, b = s.pred_sem_seg.data, t.pred_sem_seg.data
        assert a.shape == b.shape
        assert (a == b).float().mean() > 0.999
        # one padded batch vs single images: batched kernels sum in other orders through the backbone and UPerNet
        # (logits of magnitude ~10, fp32 rounding ~1e-6 relative); padding that leaked in would move them by O(1)
        np.testing.assert_allclose(s.seg_logits.data.numpy(), t.seg_logits.data.numpy(), atol=1e-4)
