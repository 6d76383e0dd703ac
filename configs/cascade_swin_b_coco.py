# Cascade Mask R-CNN + FPN, Swin V1-B backbone (mmdet's SwinTransformer), COCO 3x: the V1-T config
# with the base backbone, as cascade_swinv2_b_coco.py is the V2-T one with it. It differs from
# cascade_swinv2_b_coco.py only in the backbone (checked by tests/configs/test_v1_configs.py).
_base_ = './cascade_swin_t_coco.py'

# ImageNet-1K, 224 px, window 7 (the checkpoint of the official Cascade Swin-B 3x result, 51.9 box AP),
# converted by tools/convert_checkpoint.py.
pretrained = 'checkpoints/swin_base_patch4_window7_224_v1.pth'

model = dict(
    backbone=dict(
        embed_dims=128,
        depths=[2, 2, 18, 2],
        num_heads=[4, 8, 16, 32],
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[128, 256, 512, 1024]))
