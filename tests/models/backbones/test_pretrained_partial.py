"""Loading refuses partial fits and non-checkpoints with messages that say what to do (issue #19, finding 6)."""
import os
import sys

import pytest
import torch

from swin_dense import SwinTransformerV2
from swin_dense.checkpoint import CheckpointError
from swin_dense.models.backbones.pretrained import load_pretrained

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                'checkpoint'))
from checkpoint_helpers import cli_main  # noqa: E402

SHALLOW = dict(embed_dims=16, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8])
DEEP = dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8])


@pytest.fixture
def shallow_checkpoint(tmp_path):
    """A backbone-layout checkpoint of a depths [1, 1, 2, 1] model (all output norms included)."""
    torch.manual_seed(0)
    state = {k: torch.randn_like(v) for k, v in SwinTransformerV2(arch=SHALLOW).state_dict().items()}
    torch.save({'state_dict': state}, tmp_path / 'shallow.pth')
    return str(tmp_path / 'shallow.pth'), state


def test_other_depths_are_refused_with_the_missing_and_unexpected_weights(shallow_checkpoint):
    path, _ = shallow_checkpoint
    model = SwinTransformerV2(arch=DEEP, init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(CheckpointError) as err:
        model.init_weights()
    message = str(err.value)
    assert 'fills only part' in message and 'layers.0.blocks.1.attn.qkv.weight' in message
    assert "allow_partial=True" in message
    # The depths [2, 2, 2, 2] checkpoint into the shallow model: extra blocks are unexpected.
    deep = str(os.path.join(os.path.dirname(path), 'deep.pth'))
    torch.save({'state_dict': SwinTransformerV2(arch=DEEP).state_dict()}, deep)
    with pytest.raises(CheckpointError, match=r'unexpected \d+: layers\.0\.blocks\.1\.'):
        load_pretrained(SwinTransformerV2(arch=SHALLOW), deep)


def test_allow_partial_loads_the_matching_weights(shallow_checkpoint):
    path, state = shallow_checkpoint
    model = SwinTransformerV2(arch=DEEP)
    before = model.layers[0].blocks[1].attn.qkv.weight.clone()
    report = load_pretrained(model, path, allow_partial=True)
    assert torch.equal(model.layers[0].blocks[0].attn.qkv.weight, state['layers.0.blocks.0.attn.qkv.weight'])
    assert torch.equal(model.layers[0].blocks[1].attn.qkv.weight, before)
    assert 'layers.0.blocks.1.attn.qkv.weight' in report['missing']


def test_output_norms_absent_from_a_classification_checkpoint_are_not_partial(shallow_checkpoint, tmp_path):
    _, state = shallow_checkpoint
    classification = {k: v for k, v in state.items() if not k.startswith(('norm0', 'norm1', 'norm2'))}
    torch.save({'state_dict': classification}, tmp_path / 'cls.pth')
    report = load_pretrained(SwinTransformerV2(arch=SHALLOW), str(tmp_path / 'cls.pth'))
    assert sorted({k.split('.')[0] for k in report['missing']}) == ['norm0', 'norm1', 'norm2']


def test_a_text_file_is_named_as_such_in_init_cfg_and_the_converter(tmp_path, capsys):
    (tmp_path / 'weights.pth').write_text('Access denied\n')
    model = SwinTransformerV2(arch=SHALLOW, init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'weights.pth')))
    with pytest.raises(CheckpointError,
                       match="is a text file, not a PyTorch checkpoint \\(it starts with 'Access denied'"):
        model.init_weights()
    status, _, err = cli_main(capsys, str(tmp_path / 'weights.pth'), str(tmp_path / 'out.pth'))
    assert status == 1 and 'is a text file' in err and 'Traceback' not in err
    assert not (tmp_path / 'out.pth').exists()


def test_model_pretrained_that_is_no_swinv2_checkpoint_names_the_setting(tmp_path):
    for source in ('open-mmlab://resnet50_v1c', str(tmp_path / 'resnet.pth')):
        torch.save({'state_dict': {'conv1.weight': torch.zeros(8, 3, 7, 7)}}, tmp_path / 'resnet.pth')
        with pytest.raises((CheckpointError, FileNotFoundError), match=r"(?s)model\.pretrained=.*set "
                                                                       r"model\.pretrained=None .*SwinV2 weights"):
            load_pretrained(SwinTransformerV2(arch=SHALLOW), source, setting='model.pretrained')


def test_allow_partial_is_an_init_cfg_option(shallow_checkpoint):
    path, state = shallow_checkpoint
    model = SwinTransformerV2(arch=DEEP, init_cfg=dict(type='Pretrained', checkpoint=path, allow_partial=True))
    model.init_weights()
    assert torch.equal(model.layers[0].blocks[0].attn.qkv.weight, state['layers.0.blocks.0.attn.qkv.weight'])
