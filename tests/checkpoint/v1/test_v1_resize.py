"""swin_dense.checkpoint.v1.resize: ``--window-size 12`` resizes a window-7 checkpoint's bias tables as
mmdet / mmseg do at load time (bicubic), and nothing else."""
import os
import sys

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from checkpoint_helpers import cli_main  # noqa: E402
from swin_dense.checkpoint import read_checkpoint  # noqa: E402
from v1_helpers import ARCH, backbone_state, converted_model, images, mmdet_swin, pretrained  # noqa: E402
from v1_helpers import timm_converted  # noqa: E402,F401 (a fixture)


@pytest.mark.numerics
def test_window_7_to_12(timm_converted, tmp_path, capsys):
    _, src_path, dst7, _ = timm_converted
    status, out, err = cli_main(capsys, str(src_path), str(tmp_path / 'w12.pth'), '--window-size', '12')
    assert status == 0, err
    notes = [line for line in out.splitlines() if line.startswith('note:')]
    assert len(notes) == 1 and 'from window 7 (169 rows) to window 12 (529 rows) by bicubic' in notes[0]
    assert 'at load time' in notes[0]
    resized, original = backbone_state(tmp_path / 'w12.pth'), backbone_state(dst7)
    assert read_checkpoint(str(tmp_path / 'w12.pth'))[1]['arch']['window_size'] == 12
    tables = [k for k in original if k.endswith('relative_position_bias_table')]
    assert len(tables) == sum(ARCH['depths'])
    for key in tables:
        table = original[key]  # (169, heads)
        heads = table.shape[1]
        reference = F.interpolate(table.T.reshape(1, heads, 13, 13), size=(23, 23), mode='bicubic',
                                  align_corners=False).reshape(heads, 23 * 23).T
        assert resized[key].shape == (23 * 23, heads)
        # the converter runs the same bicubic F.interpolate on the same table; 1e-6 allows for its kernel blocking on
        # N(0, 1) values (|x| < ~4, ulp 5e-7), far below a wrong size or an align_corners change (O(0.1))
        assert torch.allclose(resized[key], reference, atol=1e-6, rtol=0), key
    assert all(torch.equal(v, original[k]) for k, v in resized.items() if k not in tables)
    model = converted_model(tmp_path / 'w12.pth', window_size=12)
    # mmdet resizes a window-7 file itself when the model has window 12: the same tables.
    at_load = mmdet_swin(12, init_cfg=pretrained(dst7))
    at_load.init_weights()
    theirs = at_load.state_dict()
    assert all(torch.equal(model.state_dict()[k], theirs[k]) for k in tables)
    with torch.no_grad():
        outs = model(images(384))
    assert [o.shape[-1] for o in outs] == [96, 48, 24, 12]
