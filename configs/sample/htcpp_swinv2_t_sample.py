# HTC++ (configs/htcpp_swinv2_l_coco.py) shrunk to the synthetic COCO-style sample, to train and test
# on CPU in about two minutes: the small SwinV2 and head sizes of cascade_swinv2_t_sample.py, the
# recipe's large-scale jitter + soft-NMS at 160 px, 40 training images for one epoch (10 iterations).
# It checks that the recipe runs end to end, not accuracy. Without InstaBoost: instaboostfast 0.1.2
# cannot read compressed-RLE masks (cocoseg_to_binary calls pycocotools' merge on one RLE dict: "string
# indices must be integers"), and the sample's annotations are compressed RLE (COCO's are polygons).
#
#   python tools/make_sample_data.py --task coco
#   OMP_NUM_THREADS=1 python tools/train.py configs/sample/htcpp_swinv2_t_sample.py
#   OMP_NUM_THREADS=1 python tools/test.py configs/sample/htcpp_swinv2_t_sample.py \
#       work_dirs/htcpp_swinv2_t_sample/epoch_1.pth --tta
_base_ = '../htcpp_swinv2_l_coco.py'

data_root = 'data/sample/coco/'
# CLASSES and PALETTE of swin_dense/sample_data/coco.py (as cascade_swinv2_t_sample.py)
metainfo = dict(classes=('rectangle', 'ellipse', 'triangle'),
                palette=[(220, 40, 40), (60, 200, 60), (30, 90, 220)])
num_classes = 3
channels = 64
image_size = (160, 160)

model = dict(
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=32, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8]),
        window_size=8,
        pretrained_window_size=0,
        drop_path_rate=0.0,
        init_cfg=None),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=channels),
    rpn_head=dict(in_channels=channels, feat_channels=channels, anchor_generator=dict(scales=[4])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=channels),
        bbox_head=[dict(head, in_channels=channels, fc_out_channels=256, num_classes=num_classes)
                   for head in _base_.model.roi_head.bbox_head],
        mask_roi_extractor=dict(out_channels=channels),
        mask_head=[dict(head, in_channels=channels, conv_out_channels=channels, num_classes=num_classes)
                   for head in _base_.model.roi_head.mask_head]),
    train_cfg=dict(
        rpn=dict(sampler=dict(num=64)),
        rpn_proposal=dict(nms_pre=300, max_per_img=100),
        rcnn=[dict(stage, sampler=dict(stage.sampler, num=64)) for stage in _base_.model.train_cfg.rcnn]),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100), rcnn=dict(max_per_img=20)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_type='absolute_range', crop_size=image_size, recompute_bbox=True,
         allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline, indices=40))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

max_epochs = 1
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=5)]
optim_wrapper = dict(optimizer=dict(lr=1e-4))
default_hooks = dict(logger=dict(interval=5), checkpoint=dict(interval=1, max_keep_ckpts=1, save_best=None))
randomness = dict(seed=0)

# TTA at the sample's size: 128, 160 and 192 px, each with and without flip
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug',
         transforms=[
             [dict(type='Resize', scale=scale, keep_ratio=True) for scale in [(128, 128), (160, 160), (192, 192)]],
             [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)],
             [dict(type='LoadAnnotations', with_bbox=True, with_mask=True)],
             [dict(type='PackDetInputs',
                   meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                              'flip_direction'))],
         ]),
]
