# Cascade Mask R-CNN + FPN, SwinV2-S backbone, COCO 3x: cascade_swinv2_t_coco.py with the backbone changed.
_base_ = './cascade_swinv2_t_coco.py'

# No public ImageNet-22K SwinV2-S checkpoint: ImageNet-1K, 256 px, window 16 (windows [16, 16, 16, 8]).
pretrained = 'checkpoints/swinv2_small_patch4_window16_256.pth'

model = dict(
    backbone=dict(
        arch='small',
        window_size=16,
        pretrained_window_size=[16, 16, 16, 8],
        drop_path_rate=0.2,  # the official Swin V1-S Cascade config
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))
