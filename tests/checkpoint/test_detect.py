"""swin_dense.checkpoint.detect: a layout named by the caller is checked against the keys."""
import pytest

from checkpoint_helpers import ours, randomize_
from swin_dense.checkpoint import CheckpointError, convert_state_dict, to_official_state_dict


def test_named_layout_is_checked_against_the_keys():
    official = to_official_state_dict(randomize_(ours(), seed=6).state_dict())
    assert convert_state_dict(official, 'official').layout == 'official'
    with pytest.raises(CheckpointError, match='not in the hf layout .*like the official layout.* --src-format'):
        convert_state_dict(official, 'hf')
    with pytest.raises(ValueError, match="unknown SwinV2 layout 'swin'; use auto or one of"):
        convert_state_dict(official, 'swin')
