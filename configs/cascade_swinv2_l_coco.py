# Cascade Mask R-CNN + FPN, SwinV2-L backbone, COCO 3x: cascade_swinv2_b_coco.py with the backbone changed.
# The paper's SwinV2-L COCO result is HTC++ (configs/htcpp_swinv2_l_coco.py); this Cascade one is ours.
# Where GPU memory is short: --cfg-options model.backbone.with_cp=True (up to 30% slower, paper section 3.5).
_base_ = './cascade_swinv2_b_coco.py'

# ImageNet-22K, 192 px, window 12 (the last stage's 6x6 map is one window: [12, 12, 12, 6]).
pretrained = 'checkpoints/swinv2_large_patch4_window12_192_22k.pth'

model = dict(
    backbone=dict(
        arch='large',
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[192, 384, 768, 1536]))
