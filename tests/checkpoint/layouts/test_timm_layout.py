"""swin_dense.checkpoint.layouts.timm: a random timm SwinV2 converts through the CLI and computes what timm
computes; timm's own ``SwinTransformerV2`` loads what ``from_official_state_dict`` writes.

How the parity is checked: tests/checkpoint/checkpoint_helpers.py; the state dicts of the load check:
test_layouts_two_way.py.
"""
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from checkpoint_helpers import (ARCH, SIZE, WINDOW, assert_all_used, assert_same, images,  # noqa: E402
                                in_fp32_and_fp64, load, random_official, randomize_, run_cli)
from numerics import assert_matches  # noqa: E402
from swin_dense.checkpoint import LAYOUTS, from_official_state_dict  # noqa: E402


@pytest.mark.numerics
def test_timm_through_the_cli(tmp_path):
    timm_v2 = pytest.importorskip('timm.models.swin_transformer_v2')
    src = randomize_(timm_v2.SwinTransformerV2(
        img_size=SIZE, patch_size=4, window_size=WINDOW, embed_dim=ARCH['embed_dims'], depths=ARCH['depths'],
        num_heads=ARCH['num_heads'], num_classes=10, drop_path_rate=0.0), seed=1)
    torch.save(src.state_dict(), tmp_path / 'timm.pth')
    result = run_cli(str(tmp_path / 'timm.pth'), str(tmp_path / 'out.safetensors'))
    assert result.returncode == 0, result.stderr
    assert 'layout: timm' in result.stdout
    assert "embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4]" in result.stdout
    total = len(src.state_dict())
    assert f'used {total - 2}/{total} source tensors' in result.stdout  # all but head.fc.{weight,bias}
    assert '2 classification head' in result.stdout
    assert_all_used(src.state_dict(), allowed_drops=['classification head'])

    model, report = load(tmp_path / 'out.safetensors')
    assert sorted(report['missing']) == [f'norm{i}.{p}' for i in range(3) for p in ('bias', 'weight')]
    assert report['unexpected'] == []
    x = images()
    (raw32, normed32), (raw64, normed64) = in_fp32_and_fp64(model, x)
    with torch.no_grad():
        src.double()
        expected = src.forward_intermediates(x.double(), norm=False, intermediates_only=True)  # NCHW, before norms
        final = src.forward_features(x.double())  # NHWC, after the final norm
    assert_matches([r.permute(0, 3, 1, 2) for r in raw32], [r.permute(0, 3, 1, 2) for r in raw64], expected,
                   'timm stage')
    assert_matches([normed32[3].permute(0, 2, 3, 1)], [normed64[3].permute(0, 2, 3, 1)], [final],
                   'timm forward_features vs norm3 output')


def test_timm_loads_the_timm_layout():
    timm_v2 = pytest.importorskip('timm.models.swin_transformer_v2')
    model = timm_v2.SwinTransformerV2(img_size=SIZE, patch_size=4, window_size=WINDOW, embed_dim=ARCH['embed_dims'],
                                      depths=ARCH['depths'], num_heads=ARCH['num_heads'], num_classes=10)
    # timm keeps its window buffers out of the state dict and has no output norms before the last.
    official = random_official(output_norms=False, coords=False, masks=False, mim=False)
    written = from_official_state_dict(official, 'timm')
    result = model.load_state_dict(written, strict=False)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert_same(model.state_dict(), written, 'timm model')
    assert_same(LAYOUTS['timm'].to_official(model.state_dict()), official, 'timm model -> official')
