# HTC++ with a SwinV2-L backbone on COCO instance segmentation: the SwinV2 paper's system-level COCO
# recipe (arXiv 2111.09883, appendix A2.1, "COCO object detection"; every value and its source in
# docs/recipes.md). Published (paper Table 3, mini-val box / mask AP): 58.8 / 51.1 tested at 1100
# with window 32, 58.9 / 51.2 with window 48, 60.2 / 52.1 multi-scale (test-dev 60.8 / 52.7).
#
# HTC++ here is mmdet 3.3's HTC without the semantic branch (mmdet::htc/htc-without-semantic_r50_fpn_1x_coco.py:
# COCO has no stuff maps; A2.1 names none) with InstaBoost (needs `pip install instaboostfast`, the
# `instaboost` extra), 1536x1536 large-scale-jitter training, soft-NMS, and multi-scale + flip TTA.
#
#   python tools/train.py configs/htcpp_swinv2_l_coco.py --cfg-options pretrained=PATH
#   python tools/test.py configs/htcpp_swinv2_l_coco.py CKPT --tta
_base_ = [
    'mmdet::htc/htc-without-semantic_r50_fpn_1x_coco.py',
    './_base_/swin_dense_runtime.py',  # custom_imports (swin_dense, its runtime, InstanceSegTTAModel); reliability_hooks
]

# ImageNet-22K, 192 px, window 12 (the last stage's 6x6 map is one window: [12, 12, 12, 6]).
pretrained = 'checkpoints/swinv2_large_patch4_window12_192_22k.pth'
data_root = 'data/coco/'
image_size = (1536, 1536)

model = dict(
    backbone=dict(
        _delete_=True,
        type='SwinTransformerV2',
        arch='large',
        window_size=32,
        pretrained_window_size=[12, 12, 12, 6],
        drop_path_rate=0.3,
        out_indices=(0, 1, 2, 3),
        with_cp=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[192, 384, 768, 1536]),
    # soft-NMS in inference (A2.1); the values of mmdet's faster-rcnn_r50_fpn.py comment on it
    test_cfg=dict(rcnn=dict(nms=dict(type='soft_nms', iou_threshold=0.5, min_score=0.05))))

# InstaBoost (mmdet's configs/instaboost settings), then large-scale jitter: resize 1536x1536 by a
# random ratio in [0.1, 2.0], crop / pad to 1536x1536 (mmdet's configs/common/lsj-100e_coco-instance.py).
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='InstaBoost', action_candidate=('normal', 'horizontal', 'skip'), action_prob=(1, 0, 0),
         scale=(0.8, 1.2), dx=15, dy=15, theta=(-1, 1), color_prob=0.5, hflag=False, aug_ratio=0.5),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.1, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_type='absolute_range', crop_size=image_size, recompute_bbox=True,
         allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
# test at 1100 (Table 3's "1100(32)": the image's longer side, our reading)
test_scale = (1100, 1100)
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='Resize', scale=test_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
# batch 64 (A2.1) = 64 GPUs x 1 image; on 8 / 16 / 32 GPUs add optim_wrapper.accumulative_counts=8 / 4 / 2
train_dataloader = dict(batch_size=1, dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

# 3x schedule (A2.1): 36 epochs, lr x0.1 at epochs 27 and 33 (mmdet's 3x), 1000-iteration warm-up
max_epochs = 36
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[27, 33], gamma=0.1),
]
# AdamW, weight decay 0.05, lr 4e-4 at batch 64 for the head and 0.1x for the backbone (A2.1): the
# optimizer's lr is the backbone's, the neck and heads get 10x it (a key matches them only, so
# norm_decay_mult keeps applying to the backbone's norms). No weight decay on norms and SwinV2's
# cpb_mlp, logit_scale, q_bias, v_bias, as the Cascade configs.
optim_wrapper = dict(
    type='NanGuardOptimWrapper',
    on_nonfinite='stop',
    optimizer=dict(_delete_=True, type='AdamW', lr=4e-5, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(
        norm_decay_mult=0.,
        custom_keys={
            'neck': dict(lr_mult=10.),
            'rpn_head': dict(lr_mult=10.),
            'roi_head': dict(lr_mult=10.),
            'cpb_mlp': dict(decay_mult=0.),
            'logit_scale': dict(decay_mult=0.),
            'q_bias': dict(decay_mult=0.),
            'v_bias': dict(decay_mult=0.),
        }))
auto_scale_lr = dict(enable=False, base_batch_size=64)
default_hooks = dict(
    _base_.reliability_hooks,
    checkpoint=dict(_base_.reliability_hooks.checkpoint, interval=1, max_keep_ckpts=3, save_best='coco/bbox_mAP',
                    rule='greater'))

# Multi-scale + flip test (Table 3's "ms" rows; the paper gives no scales: ours, around the 1100 test size)
tta_model = dict(type='InstanceSegTTAModel', tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
tta_scales = [(900, 900), (1100, 1100), (1300, 1300)]
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='TestTimeAug',
         transforms=[
             [dict(type='Resize', scale=scale, keep_ratio=True) for scale in tta_scales],
             [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)],
             [dict(type='LoadAnnotations', with_bbox=True, with_mask=True)],
             [dict(type='PackDetInputs',
                   meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                              'flip_direction'))],
         ]),
]
