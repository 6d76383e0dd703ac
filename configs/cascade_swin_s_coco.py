# Cascade Mask R-CNN + FPN, Swin V1-S backbone (mmdet's SwinTransformer), COCO 3x: the V1-T config
# with the small backbone, as cascade_swinv2_s_coco.py is the V2-T one with it. It differs from
# cascade_swinv2_s_coco.py only in the backbone (checked by tests/configs/test_v1_configs.py).
_base_ = './cascade_swin_t_coco.py'

# ImageNet-1K, 224 px, window 7, converted by tools/convert_checkpoint.py
pretrained = 'checkpoints/swin_small_patch4_window7_224_v1.pth'

model = dict(
    backbone=dict(
        depths=[2, 2, 18, 2],
        drop_path_rate=0.2,  # the official Swin V1-S Cascade config
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
