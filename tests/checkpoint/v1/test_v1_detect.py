"""Version detection (swin_dense.checkpoint.detect, v1/detect.py): V1 and V2 are told apart and reported, the
options and layouts of the other version are refused, and a V1 file in the V2 backbone says what to do."""
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from checkpoint_helpers import cli_main  # noqa: E402
from swin_dense import SwinTransformerV2  # noqa: E402
from swin_dense.checkpoint import SwinV1Checkpoint, detect_version  # noqa: E402
from swin_dense.models.backbones.pretrained import load_pretrained  # noqa: E402
from v1_helpers import ARCH, WINDOW, hf_model  # noqa: E402
from v1_helpers import timm_converted  # noqa: E402,F401 (a fixture)


def test_versions_are_detected_and_reported(timm_converted, tmp_path, capsys):
    src, src_path, _, _ = timm_converted
    assert detect_version(src.state_dict()) == 'v1'
    v2 = SwinTransformerV2(arch=dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4]), window_size=4)
    assert detect_version(v2.state_dict()) == 'v2'
    torch.save({'state_dict': v2.state_dict()}, tmp_path / 'v2.pth')
    status, out, err = cli_main(capsys, str(tmp_path / 'v2.pth'), str(tmp_path / 'v2_out.pth'))
    assert status == 0, err
    assert out.splitlines()[:2] == ['version: Swin V2', 'layout: official']
    # Version-specific options are refused for the other version, with what to use instead.
    status, _, err = cli_main(capsys, str(tmp_path / 'v2.pth'), str(tmp_path / 'x.pth'), '--window-size', '12')
    assert status == 1 and 'Swin V1' in err and 'pretrained_window_size' in err
    status, _, err = cli_main(capsys, str(src_path), str(tmp_path / 'x.pth'), '--pretrained-window-size', '12')
    assert status == 1 and 'Swin V1' in err and '--window-size' in err
    status, _, err = cli_main(capsys, str(src_path), str(tmp_path / 'x.safetensors'))
    assert status == 1 and 'write a .pth' in err
    # A named layout is checked against the keys.
    status, _, err = cli_main(capsys, str(src_path), str(tmp_path / 'x.pth'), '--src-format', 'v1-hf')
    assert status == 1 and 'not in the v1-hf layout' in err and 'v1-timm' in err
    status, _, err = cli_main(capsys, str(src_path), str(tmp_path / 'x.pth'), '--src-format', 'timm')
    assert status == 1 and 'Swin V1' in err
    status, out, err = cli_main(capsys, str(src_path), str(tmp_path / 'x.pth'), '--src-format', 'v1-timm')
    assert status == 0 and 'layout: v1-timm' in out


def test_v1_file_in_the_v2_backbone_says_what_to_do(timm_converted, tmp_path):
    src, src_path, _, _ = timm_converted
    model = SwinTransformerV2(arch=ARCH, window_size=WINDOW)
    with pytest.raises(SwinV1Checkpoint, match=r"Swin V1 checkpoint .* mmdet / mmseg \(type='SwinTransformer'\) "
                                               r".*tools/convert_checkpoint\.py"):
        load_pretrained(model, str(src_path))
    hf_model(224).save_pretrained(tmp_path / 'hf', safe_serialization=True)
    with pytest.raises(SwinV1Checkpoint, match='Swin V1'):
        load_pretrained(model, str(tmp_path / 'hf'))
