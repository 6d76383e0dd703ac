"""UPerNet + Swin V1-S (mmseg's SwinTransformer) on ADE20K: the V1-T config with the small backbone,
the published Swin V1-S recipe (47.6 mIoU).

Backbone: the public ImageNet-1K swin_small_patch4_window7_224.pth, converted by tools/convert_checkpoint.py.
"""
_base_ = ['./upernet_swin_t_ade20k.py']

pretrained = 'checkpoints/swin_small_patch4_window7_224_v1.pth'  # --cfg-options pretrained=PATH
model = dict(
    backbone=dict(depths=[2, 2, 18, 2], init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
