"""UPerNet + SwinV2-S on ADE20K, 512x512, 160k iterations: the SwinV2-T recipe with the small backbone.

Backbone: the public ImageNet-1K swinv2_small_patch4_window16_256.pth (pretrained windows
[16, 16, 16, 8]; no ImageNet-22K SwinV2-S is public), window 16.
"""
_base_ = ['./upernet_swinv2_t_ade20k.py']

pretrained = 'checkpoints/swinv2_small_patch4_window16_256.pth'  # --cfg-options pretrained=PATH
model = dict(
    backbone=dict(arch='small', init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
