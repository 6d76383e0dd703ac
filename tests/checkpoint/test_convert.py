"""swin_dense.checkpoint.convert: a backbone state dict goes to the official layout and back unchanged."""
import torch

from checkpoint_helpers import ours, randomize_
from swin_dense.checkpoint import convert_state_dict, to_official_state_dict


def test_round_trip_ours_official_ours():
    state = randomize_(ours(), seed=6).state_dict()
    official = to_official_state_dict(state)
    assert 'norm.weight' in official and 'norm3.weight' not in official
    back = convert_state_dict(official).state_dict
    assert back.keys() == state.keys()
    assert all(torch.equal(back[k], state[k]) for k in state)
