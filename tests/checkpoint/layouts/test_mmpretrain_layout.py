"""swin_dense.checkpoint.layouts.mmpretrain: a random mmpretrain classifier converts and computes what
mmpretrain computes (also at a size with padding and odd merges); its extra block norms are refused; and
mmpretrain's own ``SwinTransformerV2`` loads what ``from_official_state_dict`` writes.

How the parity is checked: tests/checkpoint/checkpoint_helpers.py; the state dicts of the load check:
test_layouts_two_way.py.
"""
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from checkpoint_helpers import (ARCH, SIZE, WINDOW, assert_same, images, in_fp32_and_fp64, load,  # noqa: E402
                                random_official, randomize_)
from numerics import assert_matches  # noqa: E402
from swin_dense.checkpoint import (LAYOUTS, CheckpointError, convert_checkpoint, convert_state_dict,  # noqa: E402
                                   from_official_state_dict)


@pytest.mark.numerics
@pytest.mark.parametrize('size', [SIZE, 100])  # 100: maps 25, 13, 7, 4 (padding and odd merges)
def test_mmpretrain_classifier(tmp_path, size):
    mmp = pytest.importorskip('mmpretrain.models.backbones')
    src = randomize_(mmp.SwinTransformerV2(
        arch=dict(ARCH, extra_norm_every_n_blocks=0), img_size=SIZE, window_size=WINDOW, drop_path_rate=0.0,
        out_indices=(0, 1, 2, 3), pad_small_map=False), seed=3)
    state = {'backbone.' + k: v for k, v in src.state_dict().items()}
    state['head.fc.weight'], state['head.fc.bias'] = torch.randn(10, 128), torch.randn(10)
    torch.save({'state_dict': state, 'meta': {'epoch': 300}}, tmp_path / 'mmpretrain.pth')
    result = convert_checkpoint(str(tmp_path / 'mmpretrain.pth'), str(tmp_path / 'out.pth'))
    conversion = result.conversion
    assert conversion.layout == 'mmpretrain'
    assert set(conversion.dropped) == {'classification head', 'window buffers (rebuilt by the model for its window)'}
    assert result.meta['pretrained_window_size'] == [WINDOW] * 4  # read off the stored coordinate tables

    model, report = load(tmp_path / 'out.pth')
    assert report['missing'] == [] and report['unexpected'] == []  # mmpretrain has all four output norms
    x = images(size)
    (_, normed32), (_, normed64) = in_fp32_and_fp64(model, x)
    with torch.no_grad():
        src.double()
        expected = src(x.double())
    assert_matches(normed32, normed64, expected, f'mmpretrain at {size}px: output')


def test_mmpretrain_loads_the_mmpretrain_layout():
    mmp = pytest.importorskip('mmpretrain.models.backbones')
    model = mmp.SwinTransformerV2(arch=dict(ARCH, extra_norm_every_n_blocks=0), img_size=SIZE, window_size=WINDOW,
                                  out_indices=(0, 1, 2, 3))
    # An mmpretrain backbone has all four output norms but no head. Its coordinate tables and
    # position indices are in its state dict, but its own loader deletes them from whatever it
    # loads and rebuilds them for its window: they are the only keys allowed to be missing.
    rebuilt = sorted(k for k in model.state_dict() if k.endswith(('relative_coords_table', 'relative_position_index')))
    assert len(rebuilt) == 2 * sum(ARCH['depths'])
    official = random_official(head=False, coords=False, masks=False, mim=False)
    written = from_official_state_dict(official, 'mmpretrain')
    result = model.load_state_dict(written, strict=False)
    assert sorted(result.missing_keys) == rebuilt and result.unexpected_keys == []
    weights = {k: v for k, v in model.state_dict().items() if k not in rebuilt}
    assert_same(weights, written, 'mmpretrain model')
    assert_same(LAYOUTS['mmpretrain'].to_official(weights), official, 'mmpretrain model -> official')
