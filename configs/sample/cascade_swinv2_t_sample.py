# Cascade Mask R-CNN + FPN with a small SwinV2, trained from scratch on the synthetic COCO-style
# sample (tools/make_sample_data.py -> data/sample/coco) on CPU in a few minutes:
#
#   python tools/make_sample_data.py --task coco
#   python tools/train.py configs/sample/cascade_swinv2_t_sample.py
#   python tools/test.py configs/sample/cascade_swinv2_t_sample.py \
#       work_dirs/cascade_swinv2_t_sample/epoch_3.pth --metrics-out work_dirs/sample_metrics.json
#
# It inherits the full COCO config and only shrinks it: a 4-stage SwinV2 with 32 channels, 64-channel
# FPN and heads, small images, fewer proposals, plain BN in the box heads, no pretrained weights,
# and a short schedule.
_base_ = '../cascade_swinv2_t_coco.py'

data_root = 'data/sample/coco/'
# CLASSES and PALETTE of swin_dense/sample_data/coco.py, which writes the data (a config is plain data:
# tests/configs/test_det_configs.py checks that the two agree)
metainfo = dict(classes=('rectangle', 'ellipse', 'triangle'),
                palette=[(220, 40, 40), (60, 200, 60), (30, 90, 220)])
num_classes = 3
channels = 64
norm_cfg = dict(type='BN', requires_grad=True)

model = dict(
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=32, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8]),  # the base's is a string
        window_size=8,
        pretrained_window_size=0,
        drop_path_rate=0.0,
        init_cfg=None),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=channels),
    # objects are 16-56 px: anchors of 4 x stride (16 px on P2 ... 256 px on P6) instead of 8 x stride
    rpn_head=dict(in_channels=channels, feat_channels=channels, anchor_generator=dict(scales=[4])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=channels),
        bbox_head=[
            dict(
                type='Shared4Conv1FCBBoxHead',
                in_channels=channels,
                conv_out_channels=channels,
                fc_out_channels=256,
                roi_feat_size=7,
                num_classes=num_classes,
                bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.], target_stds=stds),
                reg_class_agnostic=False,
                reg_decoded_bbox=True,
                norm_cfg=norm_cfg,
                loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
                loss_bbox=dict(type='GIoULoss', loss_weight=10.0))
            for stds in ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067])
        ],
        mask_roi_extractor=dict(out_channels=channels),
        mask_head=dict(in_channels=channels, conv_out_channels=channels, num_classes=num_classes)),
    # at most 4 objects per image: far fewer proposals and sampled RoIs than COCO's 2000 / 512
    train_cfg=dict(
        rpn=dict(sampler=dict(num=64)),
        rpn_proposal=dict(nms_pre=300, max_per_img=100),
        rcnn=[
            dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=iou, neg_iou_thr=iou, min_pos_iou=iou,
                               match_low_quality=False, ignore_iof_thr=-1),
                 sampler=dict(type='RandomSampler', num=64, pos_fraction=0.25, neg_pos_ub=-1, add_gt_as_proposals=True),
                 mask_size=28, pos_weight=-1, debug=False)
            for iou in (0.5, 0.6, 0.7)
        ]),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100), rcnn=dict(max_per_img=20)))

img_scale = (160, 160)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomChoiceResize', scales=[(128, 128), (160, 160), (192, 192)], keep_ratio=True),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

# 3 epochs of 60 iterations (batch 4): warm-up over 100 iterations, lr x0.1 for the last epoch
max_epochs = 3
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[2], gamma=0.1),
]
optim_wrapper = dict(optimizer=dict(lr=1e-3))
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1, save_best=None))
randomness = dict(seed=0)
# TTA on the sample's 160-px test size: 128, 160 and 192 px, each with and without flip
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
