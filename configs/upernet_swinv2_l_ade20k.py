"""UPerNet + SwinV2-L on ADE20K, 640x640 crops, 160k iterations: the Swin-L recipe (640 crops,
scale (2560, 640) as mmseg::_base_/datasets/ade20k_640x640.py) on the SwinV2-T config.

Backbone: the public ImageNet-22K swinv2_large_patch4_window12_192_22k.pth (192 px, window 12, so
pretrained windows [12, 12, 12, 6]), fine-tuned with window 20 (640 / 4 = 160 tokens: 8x8
windows in stage 0, one 20x20 window in stage 3).  Sliding inference uses 640 crops, stride 426.
Add ``model.backbone.with_cp=True`` where GPU memory is short.
"""
_base_ = ['./upernet_swinv2_t_ade20k.py']

pretrained = 'checkpoints/swinv2_large_patch4_window12_192_22k.pth'  # --cfg-options pretrained=PATH
crop_size = (640, 640)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch='large',
        window_size=20,
        pretrained_window_size=[12, 12, 12, 6],
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[192, 384, 768, 1536]),
    auxiliary_head=dict(in_channels=768),
    test_cfg=dict(crop_size=crop_size, stride=(426, 426)))

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
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
