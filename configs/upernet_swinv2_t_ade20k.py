"""UPerNet + SwinV2-T on ADE20K: 512x512 crops, window 16, 160k iterations, batch 16 (8 GPUs x 2 images).

The SwinV2 paper's ADE20K recipe for T/S/B (arXiv 2111.09883, appendix A1.2; every value and its
source in docs/recipes.md): UPerNet (mmseg's UPerHead) with an FCN auxiliary head on stage 3, AdamW
(lr 4e-5, betas (0.9, 0.999), weight decay 0.05), layer-wise lr decay 0.95, 1500-iteration linear
warm-up then linear decay (poly, power 1.0) to 0, stochastic depth 0.3.
No weight decay on norms and on the V2 attention parameters (cpb_mlp, logit_scale, q_bias, v_bias).

Backbone: the public ImageNet-1K SwinV2-T checkpoint trained at 256 px with window 16
(swinv2_tiny_patch4_window16_256.pth; no ImageNet-22K SwinV2-T is public).  Its last stage ran
on 8x8 maps, so its position-bias MLP saw windows [16, 16, 16, 8]: that is pretrained_window_size.
Fine-tuned with window 16 (512 / 4 = 128 tokens: 8x8 windows in stage 0, one window in stage 3).

Point at the checkpoint with ``--cfg-options pretrained=/path/to/swinv2_tiny_patch4_window16_256.pth``
(the tools propagate the variable into ``init_cfg``) or ``model.backbone.init_cfg.checkpoint=PATH``.

Inference: whole image by default; ``--cfg-options model.test_cfg.mode=slide`` for sliding
512x512 windows (stride 341); larger attention windows at test time with
``--cfg-options model.backbone.window_size=24`` (the CPB bias is regenerated for any window);
multi-scale + flip TTA through ``tta_model`` / ``tta_pipeline`` (see docs/segmentation.md).
"""
_base_ = [
    'mmseg::_base_/models/upernet_swin.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
    './_base_/swin_dense_runtime.py',  # custom_imports of swin_dense and swin_dense.runtime; reliability_hooks
]

pretrained = 'checkpoints/swinv2_tiny_patch4_window16_256.pth'  # --cfg-options pretrained=PATH
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        _delete_=True,  # mmseg's base has the V1 SwinTransformer with other arguments
        type='SwinTransformerV2',
        arch='tiny',
        window_size=16,
        pretrained_window_size=[16, 16, 16, 8],
        drop_path_rate=0.3,
        out_indices=(0, 1, 2, 3),
        with_cp=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[96, 192, 384, 768], num_classes=150),
    auxiliary_head=dict(in_channels=384, num_classes=150),
    # 'whole' runs the full (resized) image at once; crop_size/stride are used by mode='slide'
    test_cfg=dict(mode='whole', crop_size=crop_size, stride=(341, 341)))

# NanGuardOptimWrapper: mmengine's OptimWrapper that stops (on_nonfinite='stop') or skips ('skip') an
# iteration with a NaN / Inf loss or gradient before the step (--amp switches it to NanGuardAmpOptimWrapper).
optim_wrapper = dict(
    _delete_=True,
    type='NanGuardOptimWrapper',
    on_nonfinite='stop',
    constructor='SwinV2LayerDecayOptimizerConstructor',
    optimizer=dict(type='AdamW', lr=4e-5, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(decay_rate=0.95, custom_keys={
        'norm': dict(decay_mult=0.),  # every LayerNorm of the backbone (norm1/norm2, norm0..3, merging, embed)
        'cpb_mlp': dict(decay_mult=0.),
        'logit_scale': dict(decay_mult=0.),
        'q_bias': dict(decay_mult=0.),
        'v_bias': dict(decay_mult=0.),
    }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False),
]

# 8 GPUs x 2 images = 16. Other GPU counts: keep 16 (fewer images per GPU, or accumulation), or scale
# iterations and warm-up by 16 / batch and keep the lr, as docs/recipes.md ("More GPUs") lists.
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
auto_scale_lr = dict(enable=False, base_batch_size=16)

# Reliability (configs/_base_/swin_dense_runtime.py, docs/training.md#reliability): atomic checkpoints and
# RNG states in them; the checkpoint interval is the 160k schedule's.
default_hooks = _base_.reliability_hooks
