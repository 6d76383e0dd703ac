"""ONNX export of the UPerNet + SwinV2 sample (random weights): the dynamic graph reproduces PyTorch
at sizes the trace never saw, the predictor on the graph gives the PyTorch predictor's results, and
what must not run is refused with a message."""
import os
import shutil
import sys

import numpy as np
import pytest
import torch

pytest.importorskip('onnxruntime')
pytest.importorskip('mmseg')

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from deploy_helpers import normed_checkpoint  # noqa: E402
from inference_helpers import SEG_CONFIG  # noqa: E402

# fp32 with another op order (eager attention instead of SDPA, pooling as matrix products): measured
# max |diff| 3.5e-6 on logits of magnitude ~1; 1e-4 is the bound for segmentation logits
LOGIT_TOL = 1e-4


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return normed_checkpoint('seg', str(tmp_path_factory.mktemp('onnx_ckpt')))


@pytest.fixture(scope='module')
def dynamic_export(checkpoint, tmp_path_factory):
    from swin_dense.deploy import export_onnx
    out = str(tmp_path_factory.mktemp('seg_dynamic'))
    record = export_onnx(SEG_CONFIG, checkpoint, out)
    return out, record


@pytest.fixture(scope='module')
def predictor(checkpoint):
    from swin_dense.inference.predictor import Predictor
    return Predictor(SEG_CONFIG, checkpoint)


def _pytorch_logits(model, x):
    from swin_dense.deploy.graphs import SegmentorGraph
    with torch.no_grad():
        return SegmentorGraph(model).eval()(x).numpy()


def test_dynamic_graph_matches_pytorch_at_sizes_it_never_saw(dynamic_export, predictor):
    import onnxruntime as ort
    out, record = dynamic_export
    assert record.size_policy.kind == 'dynamic' and record.size_policy.min_side == 4  # one patch
    assert record.size_policy.shape == (257, 257)  # maps 65, 33, 17, 9: larger than the 8-token windows, odd
    session = ort.InferenceSession(os.path.join(out, 'model.onnx'), providers=['CPUExecutionProvider'])
    gen = torch.Generator().manual_seed(1)
    # 301 and 405 are no multiples of 32 or 8; at 128 x 171 the windows of stages 2 and 3 shrink to the map
    for size in [(320, 352), (301, 405), (128, 171)]:
        assert size != record.size_policy.shape
        x = torch.randn(1, 3, *size, generator=gen)
        ref = _pytorch_logits(predictor.model, x)
        got = session.run(None, {'inputs': x.numpy()})[0]
        assert got.shape == ref.shape == (1, 5, *size)
        assert np.abs(got - ref).max() < LOGIT_TOL, size


def test_onnx_predictor_gives_the_pytorch_predictors_results(dynamic_export, checkpoint, ade_sample_root):
    from swin_dense.inference.loading import load_predictor
    from swin_dense.inference.predictor import Predictor
    out, _ = dynamic_export
    torch_pred = Predictor(SEG_CONFIG, checkpoint)
    onnx_pred = load_predictor(SEG_CONFIG, os.path.join(out, 'model.onnx'))  # the sample pipeline: short side 128
    assert type(onnx_pred).__name__ == 'OnnxPredictor'
    assert onnx_pred.classes == torch_pred.classes and onnx_pred.describe()['runtime'] == 'onnxruntime'
    assert onnx_pred.runtime_summary() == 'onnxruntime'
    folder = os.path.join(ade_sample_root, 'images', 'validation')
    images = [onnx_pred.read(os.path.join(folder, n)) for n in sorted(os.listdir(folder))[:3]]
    datas = [onnx_pred.prepare(img) for img in images]
    assert min(datas[0]['inputs'].shape[1:]) == 128
    for img, a, b in zip(images, torch_pred.predict(datas), onnx_pred.predict(datas)):
        logits_a, logits_b = a.seg_logits.data.numpy(), b.seg_logits.data.numpy()
        assert logits_b.shape == (5, *img.shape[:2])
        assert np.abs(logits_a - logits_b).max() < LOGIT_TOL
        top2 = np.sort(logits_a, axis=0)[-2:]
        clear = (top2[1] - top2[0]) > 2 * LOGIT_TOL  # pixels whose winner cannot flip within the tolerance
        labels_a, labels_b = a.pred_sem_seg.data[0].numpy(), b.pred_sem_seg.data[0].numpy()
        assert clear.mean() > 0.99 and (labels_a[clear] == labels_b[clear]).all()


def test_sizes_outside_the_policy_are_refused(dynamic_export):
    from swin_dense.deploy import ExportRecordError, check_input_size
    _, record = dynamic_export
    check_input_size(record.size_policy, 4, 600)
    with pytest.raises(ExportRecordError, match=r'outside the exported graph\'s dynamic input size, both sides >= 4'):
        check_input_size(record.size_policy, 3, 600)


def test_fixed_graph_runs_its_size_only(checkpoint, predictor, tmp_path):
    import onnxruntime as ort

    from swin_dense.deploy import ExportRecordError, check_input_size, export_onnx
    record = export_onnx(SEG_CONFIG, checkpoint, str(tmp_path), shape=(128, 171))
    assert record.size_policy.kind == 'fixed'
    x = torch.randn(1, 3, 128, 171, generator=torch.Generator().manual_seed(2))
    session = ort.InferenceSession(str(tmp_path / 'model.onnx'), providers=['CPUExecutionProvider'])
    got = session.run(None, {'inputs': x.numpy()})[0]
    assert np.abs(got - _pytorch_logits(predictor.model, x)).max() < LOGIT_TOL
    with pytest.raises(ExportRecordError, match='fixed input size 128x171'):
        check_input_size(record.size_policy, 128, 160)


def test_a_corrupt_or_incomplete_export_gives_a_clear_error(dynamic_export, tmp_path):
    from swin_dense.inference.loading import load_predictor
    from swin_dense.inference.predictor import PredictorError
    out, _ = dynamic_export
    corrupt = tmp_path / 'corrupt'
    shutil.copytree(out, corrupt)
    data = (corrupt / 'model.onnx').read_bytes()
    (corrupt / 'model.onnx').write_bytes(data[:len(data) // 3])  # a truncated download
    with pytest.raises(PredictorError, match=r'is not an ONNX model ONNX Runtime can load .*re-export it'):
        load_predictor(SEG_CONFIG, str(corrupt / 'model.onnx'))
    (corrupt / 'export.json').unlink()
    with pytest.raises(PredictorError, match='has no export.json beside it'):
        load_predictor(SEG_CONFIG, str(corrupt / 'model.onnx'))

