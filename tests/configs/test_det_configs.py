"""Detection configs: each loads, keeps the Swin COCO recipe, builds its real model (t/s/b/l), and its
train / test pipelines run on the COCO sample through mmdet's CocoDataset."""
import glob
import os
import re

import pytest
import torch

pytest.importorskip('mmdet')

from mmengine.config import Config  # noqa: E402
from mmengine.model import revert_sync_batchnorm  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

from swin_dense.cli import merge_cfg_options  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COCO_CONFIGS = {os.path.basename(p).split('_')[2]: p
                for p in sorted(glob.glob(os.path.join(ROOT, 'configs', 'cascade_swinv2_*_coco.py')))}
SAMPLE_CONFIG = os.path.join(ROOT, 'configs', 'sample', 'cascade_swinv2_t_sample.py')
ALL_CONFIGS = sorted(COCO_CONFIGS.values()) + [SAMPLE_CONFIG]
# arch, embed dims, window, pretrained window (drop path, lr and the rest of the recipe: docs/recipes.md,
# checked by test_recipes.py)
EXPECTED = {
    't': ('tiny', 96, 16, [16, 16, 16, 8]),
    's': ('small', 96, 16, [16, 16, 16, 8]),
    'b': ('base', 128, 16, [12, 12, 12, 6]),
    'l': ('large', 192, 16, [12, 12, 12, 6]),
}
TINY_ARCH = dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2])


def _name(path):
    return os.path.relpath(path, ROOT)


def _cfg(path, **options):
    cfg = Config.fromfile(path)  # imports swin_dense through custom_imports
    merge_cfg_options(cfg, options)
    init_default_scope('mmdet')
    return cfg


def _build(cfg):
    from mmdet.registry import MODELS
    torch.manual_seed(0)
    return revert_sync_batchnorm(MODELS.build(cfg.model))


def test_all_sizes_present():
    assert sorted(COCO_CONFIGS) == ['b', 'l', 's', 't']


@pytest.mark.parametrize('size', ['t', 's', 'b', 'l'])
def test_recipe(size):
    """The structure of the recipe; its numbers (lr, weight decay, schedule, drop path, scales) are
    docs/recipes.md's rows, checked against the configs by test_recipes.py."""
    cfg = _cfg(COCO_CONFIGS[size])
    assert cfg.default_scope == 'mmdet'
    bb = cfg.model.backbone
    arch, dims, window, pwindow = EXPECTED[size]
    assert (bb.type, bb.arch, bb.window_size, bb.pretrained_window_size) == ('SwinTransformerV2', arch, window, pwindow)
    assert bb.init_cfg == dict(type='Pretrained', checkpoint=cfg.pretrained)
    assert cfg.model.neck.in_channels == [dims * 2 ** i for i in range(4)]
    assert cfg.model.type == 'CascadeRCNN'
    heads = cfg.model.roi_head.bbox_head
    assert len(heads) == 3
    for head, stds in zip(heads, ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067])):
        assert head.type == 'Shared4Conv1FCBBoxHead' and head.norm_cfg.type == 'SyncBN'
        assert head.reg_decoded_bbox and head.loss_bbox.type == 'GIoULoss' and head.num_classes == 80
        assert head.bbox_coder.target_stds == stds
    multistep = [s for s in cfg.param_scheduler if s.type == 'MultiStepLR'][0]
    assert multistep.gamma == 0.1 and multistep.by_epoch
    assert 'momentum' not in cfg.optim_wrapper.optimizer
    # no layer-wise lr decay (A1.2 gives none for COCO): mmengine's default constructor
    assert 'constructor' not in cfg.optim_wrapper and 'decay_rate' not in cfg.optim_wrapper.paramwise_cfg
    pw = cfg.optim_wrapper.paramwise_cfg
    assert {k for k, v in pw.custom_keys.items() if v.decay_mult == 0} >= {'cpb_mlp', 'logit_scale', 'q_bias', 'v_bias'}
    # multi-scale 480-800 x 1333 + DETR-style crop
    choice = [t for t in cfg.train_pipeline if t.type == 'RandomChoice'][0]
    scales = choice.transforms[0][0].scales
    assert min(s[0] for s in scales) == 480 and max(s[0] for s in scales) == 800 and {s[1] for s in scales} == {1333}
    assert [t.type for t in choice.transforms[1]] == ['RandomChoiceResize', 'RandomCrop', 'RandomChoiceResize']
    assert cfg.train_dataloader.dataset.pipeline == cfg.train_pipeline
    assert cfg.train_dataloader.dataset.data_root == 'data/coco/'
    assert cfg.val_evaluator.metric == ['bbox', 'segm']


def test_sizes_inherit_instead_of_copying():
    for size in ('s', 'b', 'l'):
        with open(COCO_CONFIGS[size]) as f:
            text = f.read()
        assert re.search(r"_base_ = '\./cascade_swinv2_[tb]_coco\.py'", text), size
        assert 'bbox_head' not in text and 'train_pipeline' not in text and 'optim_wrapper' not in text


def test_pretrained_override_propagates():
    cfg = _cfg(COCO_CONFIGS['b'], pretrained='/ckpts/b.pth', data_root='/datasets/coco/')
    assert cfg.model.backbone.init_cfg.checkpoint == '/ckpts/b.pth'
    assert cfg.train_dataloader.dataset.data_root == '/datasets/coco/'
    assert cfg.test_dataloader.dataset.data_root == '/datasets/coco/'
    assert cfg.val_evaluator.ann_file == '/datasets/coco/annotations/instances_val2017.json'


@pytest.mark.parametrize('size', ['t', 's', 'b', 'l'])
def test_real_model_builds(size):
    """The configured model itself (real backbone size, 80 classes) builds; its optimizer too."""
    cfg = _cfg(COCO_CONFIGS[size])
    model = _build(cfg)
    bb = model.backbone
    assert type(bb).__name__ == 'SwinTransformerV2'
    assert bb.num_features == cfg.model.neck.in_channels
    assert bb.pretrained_window_size == EXPECTED[size][3]
    n_params = sum(p.numel() for p in model.parameters()) / 1e6
    assert {'t': 40, 's': 60, 'b': 100, 'l': 190}[size] < n_params < {'t': 100, 's': 120, 'b': 160, 'l': 290}[size]
    if size == 't':  # its optimizer: one lr for every layer (no layer decay), the no-decay list applied
        groups = build_optim_wrapper(model, cfg.optim_wrapper).optimizer.param_groups
        names = {id(p): n for n, p in model.named_parameters()}
        by_name = {names[id(p)]: g for g in groups for p in g['params']}
        assert {g['lr'] for g in by_name.values()} == {cfg.optim_wrapper.optimizer.lr}
        assert by_name['backbone.layers.0.blocks.0.attn.logit_scale']['weight_decay'] == 0
        assert by_name['backbone.layers.0.blocks.0.attn.cpb_mlp.0.weight']['weight_decay'] == 0
        assert by_name['backbone.norm3.weight']['weight_decay'] == 0
        assert by_name['roi_head.bbox_head.0.shared_convs.0.bn.weight']['weight_decay'] == 0
        assert by_name['roi_head.bbox_head.0.shared_convs.0.conv.weight']['weight_decay'] == 0.05
        assert by_name['backbone.layers.2.blocks.5.attn.qkv.weight']['weight_decay'] == 0.05


def test_sizes_share_everything_but_the_backbone():
    """s/b/l differ from t only in the backbone block and the FPN input channels (so one forward test covers the heads)."""
    ref = _cfg(COCO_CONFIGS['t']).to_dict()
    for size in ('s', 'b', 'l'):
        cfg = _cfg(COCO_CONFIGS[size]).to_dict()
        for c in (ref, cfg):
            c['model'].pop('backbone')
            c['model']['neck'].pop('in_channels')
            c.pop('pretrained')
        assert cfg == ref, size
        ref = _cfg(COCO_CONFIGS['t']).to_dict()


@pytest.mark.parametrize('path', [COCO_CONFIGS['t'], SAMPLE_CONFIG], ids=_name)
def test_forward_with_tiny_backbone(path, coco_sample):
    """The config's detector (RPN, cascade 4conv1fc heads with GIoU, mask heads) runs a training step with
    finite losses and gradients, and a test step, on sample images (backbone shrunk, sample-size images)."""
    from mmdet.registry import DATASETS
    cfg = _cfg(path, data_root=coco_sample)
    cfg.model.backbone.update(arch=TINY_ARCH, init_cfg=None, with_cp=False)
    cfg.model.neck.in_channels = [16, 32, 64, 128]
    cfg.model.train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=100)
    cfg.model.test_cfg.rpn.update(nms_pre=200, max_per_img=50)
    model = _build(cfg)
    model.init_weights()
    data_cfg = _cfg(SAMPLE_CONFIG, data_root=coco_sample)  # small images: the pipeline is tested below
    ds = data_cfg.train_dataloader.dataset
    ds.update(indices=2)
    train_set = DATASETS.build(ds)
    batch = [train_set[i] for i in range(2)]
    data = model.data_preprocessor(dict(inputs=[b['inputs'] for b in batch],
                                        data_samples=[b['data_samples'] for b in batch]), training=True)
    model.train()
    losses = model(**data, mode='loss')
    assert {'s0.loss_bbox', 's2.loss_bbox', 's0.loss_mask', 's2.loss_mask', 'loss_rpn_cls'} <= set(losses)
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total)
    total.backward()
    grad = model.backbone.patch_embed.proj.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    model.eval()
    val = data_cfg.val_dataloader.dataset
    val.update(indices=1)
    item = DATASETS.build(val)[0]
    with torch.no_grad():
        out = model.test_step(dict(inputs=[item['inputs']], data_samples=[item['data_samples']]))
    inst = out[0].pred_instances
    assert inst.masks.shape[-2:] == tuple(item['data_samples'].ori_shape)
    assert inst.bboxes.shape[1] == 4


@pytest.mark.parametrize('split', ['train', 'val'])
def test_coco_pipelines_on_sample(split, coco_sample):
    """The real COCO pipelines (multi-scale + crop for training) through mmdet's CocoDataset on the sample."""
    from mmdet.registry import DATASETS
    cfg = _cfg(COCO_CONFIGS['t'], data_root=coco_sample)
    ds_cfg = cfg[f'{split}_dataloader'].dataset
    ds_cfg.metainfo = dict(classes=('rectangle', 'ellipse', 'triangle'))
    dataset = DATASETS.build(ds_cfg)
    assert len(dataset) == (240 if split == 'train' else 48)
    for i in range(3):
        item = dataset[i]
        h, w = item['inputs'].shape[-2:]
        assert 480 <= min(h, w) <= 800 and max(h, w) <= 1333
        if split == 'train':
            inst = item['data_samples'].gt_instances
            assert len(inst.masks) == len(inst.bboxes)
            assert inst.masks.height == h and inst.masks.width == w


def test_sample_config(coco_sample):
    from swin_dense.sample_data.coco import CLASSES, PALETTE
    cfg = _cfg(SAMPLE_CONFIG)
    assert cfg.metainfo.classes == CLASSES and [tuple(p) for p in cfg.metainfo.palette] == PALETTE
    assert cfg.train_dataloader.dataset.data_root == 'data/sample/coco/'
    assert cfg.val_evaluator.ann_file == 'data/sample/coco/annotations/instances_val2017.json'
    assert cfg.model.backbone.init_cfg is None
    assert all(h.num_classes == 3 for h in cfg.model.roi_head.bbox_head)
    assert cfg.model.roi_head.mask_head.num_classes == 3
