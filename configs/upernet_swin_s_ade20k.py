"""UPerNet + Swin V1-S (mmseg's SwinTransformer) on ADE20K: the V1-T config with the small backbone,
as upernet_swinv2_s_ade20k.py is the V2-T one with it. It differs from upernet_swinv2_s_ade20k.py
only in the backbone (checked by tests/configs/test_v1_configs.py).

Backbone: the public ImageNet-1K swin_small_patch4_window7_224.pth, converted by tools/convert_checkpoint.py.
"""
_base_ = ['./upernet_swin_t_ade20k.py']

pretrained = 'checkpoints/swin_small_patch4_window7_224_v1.pth'  # --cfg-options pretrained=PATH
model = dict(
    backbone=dict(depths=[2, 2, 18, 2], init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
