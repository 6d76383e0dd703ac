"""Layouts are two-way: official -> layout -> official is the identity for every SwinV2 layout (and timm's /
mmpretrain's own ``SwinTransformerV2`` load what ``from_official_state_dict`` writes with no missing or
unexpected key and the same tensors: test_timm_layout.py, test_mmpretrain_layout.py).

The official state dict (``random_official`` in tests/checkpoint/checkpoint_helpers.py) is random and tiny,
with everything a layout may meet: the backbone weights (final norm as ``norm``), the output norms before the
last that this backbone adds, a classification head, the window buffers the official code stores, and
SimMIM's mask token and decoder. Only key names and tensors are compared, bit for bit, so nothing here
depends on float kernels.
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from checkpoint_helpers import assert_same, random_official  # noqa: E402
from swin_dense.checkpoint import LAYOUTS, convert_state_dict, detect_layout, from_official_state_dict  # noqa: E402


@pytest.mark.parametrize('layout', sorted(LAYOUTS))
def test_official_to_layout_and_back_is_the_identity(layout):
    official = random_official()
    written = from_official_state_dict(official, layout)
    assert detect_layout(written) == layout
    assert_same(LAYOUTS[layout].to_official(written), official, f'official -> {layout} -> official')
    # The converter reads the written layout as the official original.
    assert_same(convert_state_dict(written).state_dict, convert_state_dict(official).state_dict,
                f'{layout} -> backbone')


def test_unknown_layout_is_named():
    with pytest.raises(ValueError, match="unknown SwinV2 layout 'swin'; use one of"):
        from_official_state_dict(random_official(), 'swin')
