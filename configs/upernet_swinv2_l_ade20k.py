"""UPerNet + SwinV2-L (ImageNet-22K) on ADE20K: the SwinV2 paper's system-level recipe (arXiv 2111.09883,
appendix A2.1; every value and its source in docs/recipes.md).

640x640 crops with window 40 (640 / 4 = 160 tokens: 4x4 windows in stage 0, one 20x20 window in
stage 3), AdamW lr 6e-5, weight decay 0.05, a 375-iteration linear warm-up then linear decay, batch
64 for 40k iterations, stochastic depth 0.3; mmseg's ADE20K 640 pipelines (scale (2560, 640), ratio
0.5-2.0, photometric distortion). Published: 55.9 mIoU with multi-scale test (paper Table 4).

Batch 64 = 8 GPUs x 8 images; the same total on 16 / 32 / 64 GPUs with 4 / 2 / 1 images per GPU
(``--cfg-options train_dataloader.batch_size=N``). Add ``model.backbone.with_cp=True`` where GPU
memory is short (up to 30% slower, paper section 3.5).

Backbone: the public ImageNet-22K swinv2_large_patch4_window12_192_22k.pth (192 px, window 12, so
pretrained windows [12, 12, 12, 6]). Inference: whole image (``model.test_cfg.mode=slide`` for
640 crops, stride 426).
"""
_base_ = ['./upernet_swinv2_t_ade20k.py']

pretrained = 'checkpoints/swinv2_large_patch4_window12_192_22k.pth'  # --cfg-options pretrained=PATH
crop_size = (640, 640)
max_iters = 40000
warmup_iters = 375
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch='large',
        window_size=40,
        pretrained_window_size=[12, 12, 12, 6],
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[192, 384, 768, 1536]),
    auxiliary_head=dict(in_channels=768),
    test_cfg=dict(mode='whole', crop_size=crop_size, stride=(426, 426)))

# A2.1 gives no layer-wise lr decay for these runs: the plain constructor
optim_wrapper = dict(
    _delete_=True,
    type='NanGuardOptimWrapper',
    on_nonfinite='stop',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={
        'norm': dict(decay_mult=0.),
        'cpb_mlp': dict(decay_mult=0.),
        'logit_scale': dict(decay_mult=0.),
        'q_bias': dict(decay_mult=0.),
        'v_bias': dict(decay_mult=0.),
    }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=warmup_iters, end=max_iters, by_epoch=False),
]
# validation and checkpoints every 4000 iterations, as mmseg's schedule_40k.py
train_cfg = dict(max_iters=max_iters, val_interval=4000)
default_hooks = dict(checkpoint=dict(interval=4000))

# the pipelines of mmseg::_base_/datasets/ade20k_640x640.py (it cannot be a second base: its keys
# clash with ade20k.py's)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(2560, 640), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2560, 640), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(batch_size=8, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
auto_scale_lr = dict(enable=False, base_batch_size=64)
