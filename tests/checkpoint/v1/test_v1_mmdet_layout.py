"""swin_dense.checkpoint.v1.mmdet_layout: the destination, mmdet's / mmseg's ``SwinTransformer``, shifts a last
stage whose map equals the window where the official code, HF and timm do not: at 224 px stages 0-2 agree
and the last one does not.

How the outputs are compared: tests/checkpoint/v1/v1_helpers.py.
"""
import pytest

from swin_dense.checkpoint import convert_v1_state_dict
from v1_helpers import (assert_same_outputs, converted_model, expected_outputs, hf_features, hf_model, images,
                        load_strictly, max_diffs, mmdet_outputs, mmdet_swin, randomize_output_norms_, timm_features,
                        timm_model)
from v1_helpers import timm_converted  # noqa: F401 (a fixture)


@pytest.mark.numerics
def test_last_stage_at_224_differs_only_by_the_shift(timm_converted, capsys):
    """At 224 px the last map (7x7) equals the window: the official code, HF and timm do not shift
    it, mmdet/mmseg do (with the shifted-window mask). Stages 0-2 still agree; the last one does not."""
    src448, _, dst, _ = timm_converted
    src = timm_model(224)
    src.load_state_dict(src448.state_dict())  # the same weights, built for 224 px
    model = converted_model(dst)
    randomize_output_norms_(model)
    x = images(224)
    raw, final = timm_features(src, x)
    outs, expected = mmdet_outputs(model, x), expected_outputs(model, raw, final)
    diffs = max_diffs(outs, expected)
    last = (outs[3] - expected[3]).abs()
    with capsys.disabled():
        print('\nSwin V1 at 224 px, window 7, mmdet vs timm max abs difference per stage: '
              + ', '.join(f'{d:.3g}' for d in diffs)
              + f'; last stage mean abs difference {last.mean().item():.3g}, its features\' std '
                f'{expected[3].std().item():.3g}')
    assert_same_outputs(model, src, timm_features, x, 'mmdet vs timm at 224px: stage', stages=slice(3))
    assert diffs[3] > 1e-2, diffs  # the last stage: shifted in mmdet, not in timm (1e3 x the fp32 bound)
    # The same for HF.
    hf = hf_model(224)
    model = load_strictly(mmdet_swin(), convert_v1_state_dict(hf.state_dict()).state_dict)
    randomize_output_norms_(model)
    raw, final = hf_features(hf, x)
    assert [layer.blocks[1].shift_size for layer in hf.swin.encoder.layers] == [3, 3, 3, 0]  # set by the forward
    hf_diffs = max_diffs(mmdet_outputs(model, x), expected_outputs(model, raw, final))
    with capsys.disabled():
        print('Swin V1 at 224 px, window 7, mmdet vs HF max abs difference per stage: '
              + ', '.join(f'{d:.3g}' for d in hf_diffs))
    assert_same_outputs(model, hf, hf_features, x, 'mmdet vs HF at 224px: stage', stages=slice(3))
    assert hf_diffs[3] > 1e-2, hf_diffs
