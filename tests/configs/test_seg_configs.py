"""Segmentation configs: each loads, builds its model and its train / test / TTA pipelines on the ADE
sample, wires backbone channels to the heads, keeps the recipe (AdamW, no decay on norms / CPB /
logit scale / q,v biases, warm-up + poly), and accepts a test-time window override."""
import glob
import math
import os

import pytest
import torch

pytest.importorskip('mmseg')

from mmengine.config import Config  # noqa: E402
from mmengine.model import revert_sync_batchnorm  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

from swin_dense.sample_data.ade import SAMPLE_CLASSES  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ADE_CONFIGS = {os.path.basename(p).split('_')[2]: p
               for p in sorted(glob.glob(os.path.join(ROOT, 'configs', 'upernet_swinv2_*_ade20k.py')))}
SAMPLE_CONFIG = os.path.join(ROOT, 'configs', 'sample', 'upernet_swinv2_t_sample.py')
ALL_CONFIGS = sorted(ADE_CONFIGS.values()) + [SAMPLE_CONFIG]
# G (3.0 B parameters, about 12 GB in fp32) is never built for real here: its model is checked on the meta
# device by tests/models/backbones/test_giant_configs.py; its pipelines (the L config's) are tested below
BUILT_CONFIGS = [path for path in ALL_CONFIGS if path != ADE_CONFIGS.get('g')]
DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')

# arch, window, pretrained window, crop of every ADE20K config built here (A1.2 for T / S, A2.1 for B / L)
EXPECTED = {
    't': ('tiny', 16, [16, 16, 16, 8], 512),
    's': ('small', 16, [16, 16, 16, 8], 512),
    'b': ('base', 40, [12, 12, 12, 6], 640),
    'l': ('large', 40, [12, 12, 12, 6], 640),
}
NO_DECAY_KEYS = ('norm', 'cpb_mlp', 'logit_scale', 'q_bias', 'v_bias')


_MODELS = {}


@pytest.fixture(scope='module')
def ade_sample(ade_sample_root):
    """The session's generated sample (the ade_sample_root fixture of tests/conftest.py), without the slash."""
    return ade_sample_root.rstrip('/')


def _cfg(path, data_root=None, **options):
    cfg = Config.fromfile(path)  # imports swin_dense through custom_imports
    if options:
        cfg.merge_from_dict(options)
    if data_root is not None:
        for name in DATALOADERS:
            cfg[name].dataset.data_root = data_root
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    return cfg


def _build(cfg):
    from mmseg.registry import MODELS
    torch.manual_seed(0)
    return revert_sync_batchnorm(MODELS.build(cfg.model))


def _model(path, **options):
    """(cfg, model in eval mode), built once per module for each config and options."""
    key = (path, tuple(sorted(options.items())))
    if key not in _MODELS:
        cfg = _cfg(path, **options)
        _MODELS[key] = cfg, _build(cfg).eval()
    return _MODELS[key]


def _name(path):
    return os.path.relpath(path, ROOT)


def test_all_sizes_present():
    assert sorted(ADE_CONFIGS) == ['b', 'g', 'l', 's', 't']


@pytest.mark.parametrize('path', BUILT_CONFIGS, ids=_name)
def test_model_builds_and_heads_match_backbone(path):
    cfg, model = _model(path)
    backbone = model.backbone
    assert type(backbone).__name__ == 'SwinTransformerV2'
    assert list(model.decode_head.in_channels) == backbone.num_features
    assert model.auxiliary_head.in_channels == backbone.num_features[2]
    assert model.test_cfg.mode == 'whole'
    assert tuple(model.test_cfg.crop_size) == tuple(cfg.crop_size)
    if path == SAMPLE_CONFIG:
        assert model.decode_head.num_classes == len(SAMPLE_CLASSES)
        assert cfg.model.backbone.init_cfg is None
    else:
        arch, window, pretrained, crop = EXPECTED[os.path.basename(path).split('_')[2]]
        assert cfg.model.backbone.arch == arch
        assert backbone.window_size == [window] * 4
        assert backbone.pretrained_window_size == pretrained
        assert tuple(cfg.crop_size) == (crop, crop) == tuple(cfg.model.data_preprocessor.size)
        assert cfg.model.backbone.init_cfg.type == 'Pretrained'
        assert model.decode_head.num_classes == 150
    # an odd-sized image through backbone and both heads
    img = torch.randn(1, 3, 72, 88)
    metas = [dict(img_shape=(72, 88), ori_shape=(72, 88), pad_shape=(72, 88))]
    with torch.no_grad():
        logits = model.encode_decode(img, metas)
        aux = model.auxiliary_head(model.extract_feat(img))
    assert logits.shape == (1, model.decode_head.num_classes, 72, 88)
    assert aux.shape[1] == model.decode_head.num_classes
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize('path', ALL_CONFIGS, ids=_name)
def test_pipelines_on_sample(path, ade_sample):
    from mmseg.registry import DATASETS
    cfg = _cfg(path, ade_sample)
    crop = cfg.crop_size
    train = DATASETS.build(cfg.train_dataloader.dataset)
    assert len(train) == 40
    item = train[0]
    assert item['inputs'].shape[0] == 3
    assert item['inputs'].shape[1] <= crop[0] and item['inputs'].shape[2] <= crop[1]
    labels = set(item['data_samples'].gt_sem_seg.data.unique().tolist())
    assert labels <= set(range(len(SAMPLE_CLASSES))) | {255}, labels  # ids 1..5 -> 0..4, 0 -> 255

    test = DATASETS.build(cfg.test_dataloader.dataset)
    assert len(test) == 10
    item = test[0]
    sample = item['data_samples']
    assert sample.gt_sem_seg.data.shape[1:] == sample.ori_shape  # labels stay at the original size
    assert sample.metainfo['reduce_zero_label']

    # multi-scale + flip TTA: 6 scales x 2 flips of one image
    tta = DATASETS.build(dict(cfg.test_dataloader.dataset, pipeline=cfg.tta_pipeline))
    item = tta[0]
    assert len(item['inputs']) == len(item['data_samples']) == 12
    assert {s.flip for s in item['data_samples']} == {False, True}
    assert cfg.tta_model.type == 'SegTTAModel'


def test_sample_dataset_classes(ade_sample):
    from mmseg.registry import DATASETS
    cfg = _cfg(SAMPLE_CONFIG, ade_sample)
    ds = DATASETS.build(cfg.val_dataloader.dataset)
    assert ds.metainfo['classes'] == SAMPLE_CLASSES
    assert len(ds.metainfo['palette']) == len(SAMPLE_CLASSES)
    assert type(ds).__name__ == 'ADE20KDataset'


@pytest.mark.parametrize('path', [ADE_CONFIGS['t'], ADE_CONFIGS['l'], SAMPLE_CONFIG], ids=_name)
def test_no_weight_decay_on_norms_and_v2_attention_params(path):
    """Under the T recipe's layer-decay constructor (T, and the sample that inherits it) and the plain
    one (L) alike."""
    cfg, model = _model(path)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    optimizer = wrapper.optimizer
    assert type(optimizer).__name__ == 'AdamW'
    assert optimizer.defaults['betas'] == (0.9, 0.999)
    assert optimizer.defaults['weight_decay'] == 0.05
    names = {id(p): n for n, p in model.named_parameters()}
    seen = set()
    for group in optimizer.param_groups:
        for p in group['params']:
            name = names[id(p)]
            seen.add(name)
            if name.startswith('backbone.') and any(k in name for k in NO_DECAY_KEYS):
                assert group['weight_decay'] == 0, name
            elif name.endswith(('qkv.weight', 'fc1.weight', 'proj.weight', 'reduction.weight')):
                assert group['weight_decay'] == 0.05, name
    assert seen == set(names.values())
    for key in ('cpb_mlp.0.weight', 'logit_scale', 'q_bias', 'v_bias', 'norm1.weight', 'norm3.bias'):
        assert any(key in n for n in seen), key


def test_recipe_schedule_and_inheritance():
    """What test_recipes.py does not check: the warm-up hands over to the decay, S shares T's recipe and B
    shares L's, and L's pipelines are mmseg's 640 ones; the values themselves are docs/recipes.md's."""
    t = _cfg(ADE_CONFIGS['t'])
    large = _cfg(ADE_CONFIGS['l'])
    for cfg in (t, large):
        warmup, poly = cfg.param_scheduler
        assert (warmup.type, warmup.begin, poly.type, poly.eta_min) == ('LinearLR', 0, 'PolyLR', 0.0)
        assert poly.begin == warmup.end and poly.end == cfg.train_cfg.max_iters
        assert cfg.train_dataloader.dataset.data_root == 'data/ade/ADEChallengeData2016'
    assert t.optim_wrapper.constructor == 'SwinV2LayerDecayOptimizerConstructor'
    assert 'constructor' not in large.optim_wrapper  # A2.1 names no layer decay
    for size, parent in (('s', t), ('b', large)):
        cfg = _cfg(ADE_CONFIGS[size])
        assert cfg.optim_wrapper == parent.optim_wrapper
        assert cfg.param_scheduler == parent.param_scheduler
        assert cfg.train_cfg == parent.train_cfg
        assert cfg.train_dataloader.dataset.pipeline == parent.train_dataloader.dataset.pipeline
    crops = [s.crop_size for s in large.train_dataloader.dataset.pipeline if s.type == 'RandomCrop']
    assert crops == [(640, 640)]
    resize = [s.scale for s in large.test_dataloader.dataset.pipeline if s.type == 'Resize']
    assert resize == [(2560, 640)]


def test_slide_mode_override():
    whole = _model(SAMPLE_CONFIG)[1]
    slide = _build(_cfg(SAMPLE_CONFIG, **{'model.test_cfg.mode': 'slide'})).eval()
    slide.load_state_dict(whole.state_dict())
    assert slide.test_cfg.mode == 'slide' and tuple(slide.test_cfg.stride) == (85, 85)
    img = torch.randn(1, 3, 128, 200)  # two 128x128 crops, stride 85
    metas = [dict(img_shape=(128, 200), ori_shape=(128, 200), pad_shape=(128, 200))]
    with torch.no_grad():
        logits = slide.inference(img, metas)
    assert logits.shape == (1, len(SAMPLE_CLASSES), 128, 200)
    assert torch.isfinite(logits).all()
    # an image no larger than the crop is one crop: slide equals whole
    img = img[..., :128]
    metas = [dict(img_shape=(128, 128), ori_shape=(128, 128), pad_shape=(128, 128))]
    with torch.no_grad():
        torch.testing.assert_close(slide.inference(img, [dict(m) for m in metas]), whole.inference(img, metas))


@pytest.mark.parametrize('path', [ADE_CONFIGS['t'], SAMPLE_CONFIG], ids=_name)
def test_window_override_keeps_checkpoint_compatible(path):
    model = _model(path)[1]
    big = _build(_cfg(path, **{'model.backbone.window_size': 24})).eval()
    assert big.backbone.window_size == [24] * 4
    assert big.backbone.pretrained_window_size == model.backbone.pretrained_window_size
    big.load_state_dict(model.state_dict(), strict=True)  # no window-shaped parameters or buffers
    if path == SAMPLE_CONFIG:
        img = torch.randn(1, 3, 128, 160)
        metas = [dict(img_shape=(128, 160), ori_shape=(128, 160), pad_shape=(128, 160))]
        with torch.no_grad():
            logits = big.encode_decode(img, metas)
            small = model.encode_decode(img, metas)
        assert torch.isfinite(logits).all()
        assert not math.isnan(logits.abs().mean().item())
        assert not torch.allclose(logits, small)  # stage 0 (32 x 40 tokens) really uses 24-token windows


def test_layer_decay_rate_from_the_command_line():
    """The sample inherits T's layer decay (0.95); another rate given as a --cfg-option takes effect."""
    cfg, model = _model(SAMPLE_CONFIG)
    assert cfg.optim_wrapper.paramwise_cfg.decay_rate == 0.95
    cfg = _cfg(SAMPLE_CONFIG, **{'optim_wrapper.paramwise_cfg.decay_rate': 0.9})
    optimizer = build_optim_wrapper(model, cfg.optim_wrapper).optimizer
    groups = {g['param_name']: g for g in optimizer.param_groups}
    base_lr = cfg.optim_wrapper.optimizer.lr
    num_layers = sum(model.backbone.depths) + 1
    assert groups['decode_head.conv_seg.weight']['lr'] == pytest.approx(base_lr)
    assert groups['backbone.patch_embed.proj.weight']['lr'] == pytest.approx(base_lr * 0.9 ** num_layers)
    # the no-decay keys still apply under layer decay
    assert groups['backbone.layers.0.blocks.0.attn.logit_scale']['weight_decay'] == 0
    assert groups['backbone.layers.0.blocks.0.attn.qkv.weight']['weight_decay'] == 0.05


def test_ade_sample_is_deterministic_ade20k_format(tmp_path, ade_sample):
    import numpy as np
    from PIL import Image

    from swin_dense.sample_data.ade import make_ade_sample
    make_ade_sample(str(tmp_path))
    for split, prefix, count in (('training', 'ADE_train', 40), ('validation', 'ADE_val', 10)):
        images = sorted(os.listdir(tmp_path / 'images' / split))
        labels = sorted(os.listdir(tmp_path / 'annotations' / split))
        assert len(images) == len(labels) == count
        assert images[0] == f'{prefix}_00000001.jpg' and labels[0] == f'{prefix}_00000001.png'
        for name in labels:
            ours = np.array(Image.open(tmp_path / 'annotations' / split / name))
            again = np.array(Image.open(os.path.join(ade_sample, 'annotations', split, name)))
            assert ours.dtype == np.uint8 and ours.ndim == 2
            assert np.array_equal(ours, again)  # same seed, same labels
            assert set(np.unique(ours)) <= set(range(len(SAMPLE_CLASSES) + 1))
            img = Image.open(tmp_path / 'images' / split / name.replace('.png', '.jpg'))
            assert img.mode == 'RGB' and img.size[::-1] == ours.shape
