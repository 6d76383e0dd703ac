# Cascade Mask R-CNN + FPN, SwinV2-B backbone, COCO 3x: cascade_swinv2_t_coco.py with the backbone changed.
_base_ = './cascade_swinv2_t_coco.py'

# ImageNet-22K, 192 px, window 12 (the last stage's 6x6 map is one window: [12, 12, 12, 6]).
pretrained = 'checkpoints/swinv2_base_patch4_window12_192_22k.pth'

model = dict(
    backbone=dict(
        arch='base',
        window_size=16,
        pretrained_window_size=[12, 12, 12, 6],
        drop_path_rate=0.3,  # the official Swin V1-B Cascade config
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[128, 256, 512, 1024]))
