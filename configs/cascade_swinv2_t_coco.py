# Cascade Mask R-CNN + FPN with a SwinV2-T backbone on COCO instance segmentation, 3x schedule
# (36 epochs), multi-scale + DETR-style crop training, AdamW: the SwinV2 paper's COCO recipe (arXiv
# 2111.09883, appendix A1.2) on the official Swin V1 Cascade configs. Every value and its source is in
# docs/recipes.md. s/b/l inherit this file and change the backbone only.
#
#   python tools/train.py configs/cascade_swinv2_t_coco.py --cfg-options pretrained=PATH [--amp]
#   bash tools/dist_train.sh configs/cascade_swinv2_t_coco.py 8 --cfg-options pretrained=PATH
_base_ = [
    'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
    './_base_/swin_dense_runtime.py',  # custom_imports of swin_dense and swin_dense.runtime; reliability_hooks
]

# Pretrained backbone (converted with tools/convert_checkpoint.py or the official .pth as is).
# Override with `--cfg-options pretrained=PATH` (the tools propagate it) or
# `--cfg-options model.backbone.init_cfg.checkpoint=PATH`. SwinV2-T has no public ImageNet-22K
# checkpoint: this is the ImageNet-1K, 256 px, window-16 one (pretrained windows [16, 16, 16, 8]).
pretrained = 'checkpoints/swinv2_tiny_patch4_window16_256.pth'
data_root = 'data/coco/'

model = dict(
    backbone=dict(
        _delete_=True,
        type='SwinTransformerV2',
        arch='tiny',
        # fine-tune window 16 in every stage; the position-bias MLP was trained with windows
        # [16, 16, 16, 8] (256 px input: the last 8x8 map is one window)
        window_size=16,
        pretrained_window_size=[16, 16, 16, 8],
        drop_path_rate=0.2,
        out_indices=(0, 1, 2, 3),
        with_cp=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]),
    # One 4conv1fc GIoU head per cascade stage; only the regression target stds differ.
    roi_head=dict(bbox_head=[
        dict(
            type='Shared4Conv1FCBBoxHead',
            in_channels=256,
            conv_out_channels=256,
            fc_out_channels=1024,
            roi_feat_size=7,
            num_classes=80,
            bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.], target_stds=stds),
            reg_class_agnostic=False,
            reg_decoded_bbox=True,
            norm_cfg=dict(type='SyncBN', requires_grad=True),
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type='GIoULoss', loss_weight=10.0))
        for stds in ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067])
    ]))

# Multi-scale training (short side 480-800, long side <= 1333) and the DETR-style crop, as in
# mmdet's configs/swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py.
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomChoice',
        transforms=[
            [
                dict(
                    type='RandomChoiceResize',
                    scales=[(480, 1333), (512, 1333), (544, 1333), (576, 1333), (608, 1333), (640, 1333),
                            (672, 1333), (704, 1333), (736, 1333), (768, 1333), (800, 1333)],
                    keep_ratio=True)
            ],
            [
                dict(type='RandomChoiceResize', scales=[(400, 1333), (500, 1333), (600, 1333)], keep_ratio=True),
                dict(type='RandomCrop', crop_type='absolute_range', crop_size=(384, 600), allow_negative_crop=True),
                dict(
                    type='RandomChoiceResize',
                    scales=[(480, 1333), (512, 1333), (544, 1333), (576, 1333), (608, 1333), (640, 1333),
                            (672, 1333), (704, 1333), (736, 1333), (768, 1333), (800, 1333)],
                    keep_ratio=True)
            ],
        ]),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

# 3x schedule: 36 epochs, lr x0.1 at epochs 27 and 33, linear warm-up over the first 1000 iterations.
max_epochs = 36
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[27, 33], gamma=0.1),
]

# AdamW, lr 1e-4 at batch 16 (8 GPUs x 2 images), weight decay 0.05 (A1.2); no weight decay on
# normalisation layers (norm_decay_mult catches every LayerNorm / BatchNorm) nor on SwinV2's
# cpb_mlp, logit_scale, q_bias and v_bias. No layer-wise lr decay: A1.2 gives none for COCO.
# NanGuardOptimWrapper: mmengine's OptimWrapper that stops (on_nonfinite='stop') or skips ('skip') an
# iteration with a NaN / Inf loss or gradient before the step (--amp switches it to NanGuardAmpOptimWrapper).
optim_wrapper = dict(
    type='NanGuardOptimWrapper',
    on_nonfinite='stop',
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(
        norm_decay_mult=0.,
        custom_keys={
            'cpb_mlp': dict(decay_mult=0.),
            'logit_scale': dict(decay_mult=0.),
            'q_bias': dict(decay_mult=0.),
            'v_bias': dict(decay_mult=0.),
        }))

# `--auto-scale-lr` rescales lr for other total batch sizes
auto_scale_lr = dict(enable=False, base_batch_size=16)
# Reliability (configs/_base_/swin_dense_runtime.py, docs/training.md#reliability): atomic checkpoints and
# RNG states in them, with the COCO checkpoint policy: every epoch, the last 3 and the best box AP kept.
default_hooks = dict(
    _base_.reliability_hooks,
    checkpoint=dict(_base_.reliability_hooks.checkpoint, interval=1, max_keep_ckpts=3, save_best='coco/bbox_mAP',
                    rule='greater'))

# Multi-scale + flip test (`tools/test.py --tta`): InstanceSegTTAModel (swin_dense/models/det_tta.py,
# imported by the runtime base) pools the views' instances, un-flipped, and keeps the best by per-class
# NMS; mmdet's own DetTTAModel refuses masks and crashes in Cascade's merge_aug_masks on flipped views.
# Scales: those of mmdet's configs/retinanet/retinanet_tta.py (the paper gives none for its "ms" rows).
tta_model = dict(type='InstanceSegTTAModel', tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
tta_scales = [(1333, 800), (666, 400), (2000, 1200)]
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
