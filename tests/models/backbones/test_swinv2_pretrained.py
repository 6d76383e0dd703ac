"""init_cfg=dict(type='Pretrained') loads official and timm checkpoints safely and loudly."""
import os

import pytest
import torch

from swin_dense import SwinTransformerV2
from swin_dense.checkpoint import CheckpointError

TINY = dict(embed_dims=16, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8])


def _official_state_dict(window=12):
    """An official-layout classification checkpoint, with the window buffers and head it stores."""
    torch.manual_seed(1)
    src = SwinTransformerV2(arch=TINY, window_size=window, out_indices=(3,))
    sd = {k: torch.randn_like(v) for k, v in src.state_dict().items()}
    sd['norm.weight'], sd['norm.bias'] = sd.pop('norm3.weight'), sd.pop('norm3.bias')
    sd['head.weight'], sd['head.bias'] = torch.randn(10, 128), torch.randn(10)
    n = window * window
    sd['layers.0.blocks.0.attn.relative_coords_table'] = torch.zeros(1, 2 * window - 1, 2 * window - 1, 2)
    sd['layers.0.blocks.0.attn.relative_position_index'] = torch.zeros(n, n, dtype=torch.long)
    sd['layers.2.blocks.1.attn_mask'] = torch.zeros(4, n, n)
    return sd


def _load(path, **kwargs):
    model = SwinTransformerV2(arch=TINY, init_cfg=dict(type='Pretrained', checkpoint=str(path)), **kwargs)
    model.init_weights()
    return model


def test_official_checkpoint_loads_into_a_larger_window(tmp_path):
    sd = _official_state_dict(window=12)
    torch.save({'model': sd}, tmp_path / 'official.pth')
    model = _load(tmp_path / 'official.pth', window_size=16, pretrained_window_size=[12, 12, 12, 6])
    own = model.state_dict()
    for key, value in own.items():
        if key.startswith(('norm0', 'norm1', 'norm2')):
            continue
        source = sd['norm.' + key.split('.', 1)[1]] if key.startswith('norm3.') else sd[key]
        assert torch.equal(value, source), key
    with torch.no_grad():
        assert all(torch.isfinite(o).all() for o in model(torch.randn(1, 3, 96, 96)))


def test_timm_layout_loads_with_downsample_moved_back(tmp_path):
    sd = _official_state_dict()
    timm_sd = {}
    for key, value in sd.items():
        if '.downsample.' in key:
            stage = int(key.split('.')[1])
            key = key.replace(f'layers.{stage}.', f'layers.{stage + 1}.', 1)
        timm_sd[key.replace('head.', 'head.fc.')] = value
    torch.save(timm_sd, tmp_path / 'timm.pth')
    model = _load(tmp_path / 'timm.pth')
    assert torch.equal(model.layers[0].downsample.reduction.weight, sd['layers.0.downsample.reduction.weight'])


def test_mismatched_architecture_lists_the_shapes(tmp_path):
    torch.save({'model': _official_state_dict()}, tmp_path / 'official.pth')
    with pytest.raises(CheckpointError, match=r'layers\.0\.blocks\.0\.attn\.qkv\.weight: checkpoint \[48, 16\] vs model'):
        _load_other = SwinTransformerV2(arch=dict(embed_dims=32, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8]),
                                        init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'official.pth')))
        _load_other.init_weights()


def test_checkpoint_of_another_model_is_refused(tmp_path):
    torch.save({'state_dict': {'conv1.weight': torch.zeros(64, 3, 7, 7)}}, tmp_path / 'resnet.pth')
    with pytest.raises(ValueError, match='not a SwinV2 checkpoint'):
        _load(tmp_path / 'resnet.pth')


class _Payload:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, 'w'))


def test_pickled_payload_never_runs(tmp_path):
    target = tmp_path / 'pwned.txt'
    torch.save({'model': _official_state_dict(), 'extra': _Payload(str(target))}, tmp_path / 'evil.pth')
    with pytest.raises(CheckpointError, match='refusing to load'):
        _load(tmp_path / 'evil.pth')
    assert not target.exists()


def test_empty_and_truncated_files_are_named(tmp_path):
    (tmp_path / 'empty.pth').write_bytes(b'')
    with pytest.raises(CheckpointError, match='empty'):
        _load(tmp_path / 'empty.pth')
    torch.save({'model': _official_state_dict()}, tmp_path / 'full.pth')
    data = (tmp_path / 'full.pth').read_bytes()
    (tmp_path / 'cut.pth').write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match='truncated or corrupt'):
        _load(tmp_path / 'cut.pth')
    with pytest.raises(FileNotFoundError, match='does not exist'):
        _load(os.path.join(tmp_path, 'missing.pth'))
