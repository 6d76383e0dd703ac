"""mmseg's own FCN config, only the backbone swapped for SwinTransformerV2: model.pretrained loads, a step trains."""
import os

import mmseg
import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from swin_dense import SwinTransformerV2

# mmseg's stock FCN (ResNet-50-D8, ADE20K): model.pretrained='open-mmlab://resnet50_v1c', SyncBN heads, 512x512 crops.
FCN = os.path.join(os.path.dirname(mmseg.__file__), '.mim', 'configs', 'fcn', 'fcn_r50-d8_4xb4-80k_ade20k-512x512.py')
TINY = dict(embed_dims=16, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8])


def _fcn_with_swinv2(pretrained):
    """The stock config, backbone swapped (the heads read its stage 3 / stage 2 channels), model.pretrained set."""
    cfg = Config.fromfile(FCN)
    cfg.model.backbone = dict(type='SwinTransformerV2', arch=TINY, window_size=4, out_indices=(0, 1, 2, 3))
    cfg.model.decode_head.in_channels = 128
    cfg.model.auxiliary_head.in_channels = 64
    if pretrained is not None:
        cfg.model.pretrained = pretrained
    init_default_scope('mmseg')
    return MODELS.build(cfg.model)


def _batch(size=64):
    gen = torch.Generator().manual_seed(0)
    inputs = [torch.randint(0, 256, (3, size, size), generator=gen, dtype=torch.uint8) for _ in range(2)]
    samples = []
    for _ in range(2):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 150, (1, size, size), generator=gen))
        sample.set_metainfo(dict(img_shape=(size, size), ori_shape=(size, size), pad_shape=(size, size)))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def test_stock_fcn_with_swinv2_loads_model_pretrained_and_trains_a_step(tmp_path):
    torch.manual_seed(0)
    weights = {k: torch.randn_like(v) for k, v in SwinTransformerV2(arch=TINY, window_size=4).state_dict().items()}
    torch.save({'state_dict': weights}, tmp_path / 'swinv2_tiny.pth')
    model = _fcn_with_swinv2(str(tmp_path / 'swinv2_tiny.pth'))
    model.init_weights()
    own = model.backbone.state_dict()
    assert all(torch.equal(own[k], weights[k]) for k in weights)
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    model.train()
    losses = model.train_step(_batch(), optim)
    assert torch.isfinite(losses['loss'])
    changed = model.backbone.patch_embed.proj.weight
    assert not torch.equal(changed, weights['patch_embed.proj.weight'])


def test_stock_model_pretrained_of_another_backbone_names_the_setting():
    model = _fcn_with_swinv2(None)  # the config's own open-mmlab://resnet50_v1c
    assert model.backbone.init_cfg['checkpoint'] == 'open-mmlab://resnet50_v1c'
    with pytest.raises(FileNotFoundError, match=r'(?s)model\.pretrained=.*set model\.pretrained=None'):
        model.init_weights()
